"""The bundled demo model: a small surface-defect classifier in ONNX with its JSON sidecar."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEMO_MODEL = "surface_demo.onnx"
DEMO_SIDECAR = "surface_demo.json"


def demo_model_path() -> Path:
    """Return the file system path of the bundled demo ONNX model."""
    return _resource_path(DEMO_MODEL)


def demo_sidecar_path() -> Path:
    """Return the path of the JSON sidecar (classes, preprocessing, training and test metrics)."""
    return _resource_path(DEMO_SIDECAR)


def _resource_path(name: str) -> Path:
    # Wheels and editable installs keep package data as plain files, so the traversable is a Path.
    return Path(str(resources.files(__name__).joinpath(name)))
