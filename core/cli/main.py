"""The `defectline` command: one entry point with a subcommand per service or task."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from defectline import __version__
from defectline.config import PlantConfig, load_config
from defectline.errors import DefectlineError
from defectline.logs import configure_logging

logger = logging.getLogger("defectline.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except DefectlineError as exc:
        print(f"defectline {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="defectline",
        description="Deep-learning visual inspection: cameras, Kafka, ONNX inference, PLCs, PostgreSQL.",
    )
    parser.add_argument("--version", action="version", version=f"defectline {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=_env_path("DEFECTLINE_CONFIG"),
        help="plant configuration YAML (default: $DEFECTLINE_CONFIG, else the embedded demo plant)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("DEFECTLINE_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level (default: $DEFECTLINE_LOG_LEVEL, else INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from defectline.cli import demo, services

    demo.add_parser(commands)
    services.add_parsers(commands)
    _describe_subcommands(commands)
    return parser


def _describe_subcommands(commands: argparse._SubParsersAction) -> None:
    """Give each subcommand's own --help the one-line help shown in the command list."""
    for action in commands._choices_actions:
        subparser = commands.choices[action.dest]
        if subparser.description is None:
            subparser.description = action.help
        for nested in subparser._subparsers._group_actions if subparser._subparsers else ():
            if isinstance(nested, argparse._SubParsersAction):
                _describe_subcommands(nested)


def load_plant(args: argparse.Namespace) -> PlantConfig:
    """Load the configuration named on the command line and log it once with secrets masked."""
    config = load_config(args.config)
    effective = json.dumps(config.model_dump(mode="json"), separators=(",", ":"))
    logger.info(
        "configuration source=%s effective=%s", args.config or "embedded demo plant", effective
    )
    return config


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


if __name__ == "__main__":
    sys.exit(main())
