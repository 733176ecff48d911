"""Logging set-up for the command-line entry points; library modules only get loggers."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Send log records to stderr at `level`; quiet the chattiest third-party loggers."""
    # basicConfig adds no handler when the root logger has one already (pytest's, for example).
    logging.basicConfig(format=FORMAT, stream=sys.stderr)
    logging.getLogger().setLevel(level.upper())
    for noisy in ("asyncua", "pymodbus", "aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
