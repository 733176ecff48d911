"""ONNX metadata of training tools: Ultralytics names, imgsz and stride; anomalib thresholds."""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping

from defectline.streams.inference.errors import ModelLoadError

logger = logging.getLogger(__name__)

# Ultralytics writes `task` as one of these; only plain detection and classification map onto
# our families (its "segment" models are instance segmenters with prototype masks).
ULTRALYTICS_TASKS = {"detect": "detection", "classify": "classification"}


def _literal(metadata: Mapping[str, str], key: str) -> object:
    text = metadata[key]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise ModelLoadError(
            f"ONNX metadata '{key}' is {text[:200]!r}, which is not a Python literal; "
            "re-export the model or set the value in the configuration"
        ) from exc


def class_names(metadata: Mapping[str, str]) -> tuple[str, ...] | None:
    """Class names from the `names` key ("{0: 'crack', 1: 'dent'}" or a list), or None."""
    if "names" not in metadata:
        return None
    value = _literal(metadata, "names")
    if isinstance(value, dict):
        keys = sorted(value)
        if keys != list(range(len(keys))):
            raise ModelLoadError(
                f"ONNX metadata 'names' has class indexes {keys}; expected 0..{len(keys) - 1}"
            )
        return tuple(str(value[key]) for key in keys)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    raise ModelLoadError(f"ONNX metadata 'names' is {value!r}; expected a dict or a list")


def image_size(metadata: Mapping[str, str]) -> tuple[int, int] | None:
    """(height_px, width_px) from the `imgsz` key ("[640, 640]" or "640"), or None."""
    if "imgsz" not in metadata:
        return None
    value = _literal(metadata, "imgsz")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise ModelLoadError(f"ONNX metadata 'imgsz' is {value!r}; expected [height, width]")


def stride(metadata: Mapping[str, str]) -> int | None:
    """Largest network stride from the `stride` key, or None."""
    if "stride" not in metadata:
        return None
    value = _literal(metadata, "stride")
    if isinstance(value, list | tuple):
        value = max(value)
    if not isinstance(value, int | float) or value < 1:
        raise ModelLoadError(f"ONNX metadata 'stride' is {value!r}; expected a positive integer")
    return int(value)


def float_value(metadata: Mapping[str, str], *keys: str) -> float | None:
    """The first of `keys` present, as a float, or None."""
    for key in keys:
        if key in metadata:
            try:
                return float(metadata[key])
            except ValueError as exc:
                raise ModelLoadError(
                    f"ONNX metadata '{key}' is {metadata[key]!r}, not a number"
                ) from exc
    return None
