"""Locations of the local stack's cache, state and logs, outside the repository."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

HOME_ENV = "DEFECTLINE_HOME"


def defectline_home(environ: Mapping[str, str] | None = None) -> Path:
    """Return `$DEFECTLINE_HOME`, or `~/.cache/defectline` when it is unset or empty."""
    environ = os.environ if environ is None else environ
    value = environ.get(HOME_ENV, "")
    if value:
        return Path(value).expanduser()
    return Path.home() / ".cache" / "defectline"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the download cache (Kafka jars) shared by the stack and the test fixtures."""
    return defectline_home(environ) / "cache"
