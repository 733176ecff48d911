"""Load the plant configuration from YAML, apply environment overrides and validate it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from defectline.config.models import PlantConfig
from defectline.errors import ConfigError

logger = logging.getLogger(__name__)

ENV_PREFIX = "DEFECTLINE_"
ENV_NESTING = "__"
# Environment variables with the prefix that are options of the CLI, not config keys.
ENV_NOT_CONFIG = {"DEFECTLINE_CONFIG", "DEFECTLINE_HOME", "DEFECTLINE_LOG_LEVEL"}


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> PlantConfig:
    """Load the plant configuration.

    With no `path`, the embedded demo plant is used. Variables named `DEFECTLINE_<KEY>__<KEY>...`
    in `environ` replace single values, list items addressed by index (`DEFECTLINE_PLCS__0__PORT`).
    `overrides` is a nested mapping merged last, for callers such as the demo command.
    """
    if path is None:
        document = _read_yaml(
            resources.files("defectline.config").joinpath("demo.yaml").read_text(),
            "embedded demo.yaml",
        )
        source = "embedded demo plant"
    else:
        document = _read_yaml(_read_file(path), str(path))
        source = str(path)

    environ = os.environ if environ is None else environ
    applied = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_CONFIG:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split(ENV_NESTING)
        _set_path(document, keys, _parse_env_value(raw), origin=name)
        applied.append(name)
    if applied:
        source = f"{source} with environment overrides {', '.join(applied)}"
    if overrides:
        document = _merge(document, overrides)

    try:
        config = PlantConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, source)) from exc
    logger.debug("loaded configuration source=%s", source)
    return config


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file not found: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections, got {type(document).__name__}"
        )
    return document


# YAML 1.1 reads these words as booleans; in an environment variable they are meant as text
# (use_timescaledb=on, for example), while true/false still parse as booleans.
_YAML11_BOOL_WORDS = {"on", "off", "yes", "no", "y", "n"}


def _parse_env_value(raw: str) -> Any:
    if raw.strip().lower() in _YAML11_BOOL_WORDS:
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _set_path(document: dict[str, Any], keys: list[str], value: Any, origin: str) -> None:
    node: Any = document
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(
                    f"environment variable {origin}: '{key}' is not an index of the "
                    f"{len(node)}-item list at {'.'.join(keys[:depth]) or 'top level'}"
                )
            index = int(key)
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            raise ConfigError(
                f"environment variable {origin}: {'.'.join(keys[:depth])} is a single value, "
                "not a section"
            )
        if last:
            node[key] = value
        else:
            node = node.setdefault(key, {})


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration ({exc.error_count()} problem(s))"]
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            message = "unknown key; check its spelling and the configuration reference"
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            message = error["msg"]
            shown = error.get("input")
            # Only single values are echoed: a section's input contains its siblings, and so
            # possibly a password, while the message already names what was wrong.
            if isinstance(shown, str | int | float | bool) and error["type"] not in (
                "model_type",
                "union_tag_invalid",
            ):
                if any(word in location.lower() for word in ("password", "secret", "token")):
                    shown = "***"
                message = f"{message} (got {shown!r})"
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)
