"""Training of the bundled demo model: render data, train the CNN, export ONNX and its sidecar.

Run with `python -m defectline.training.train_demo`; it needs the `train` extra (PyTorch). The
exported model is measured again with onnxruntime on the held-out test split, and those numbers
go into the JSON sidecar next to the ONNX file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import sys
import time
from datetime import UTC, datetime
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime

from defectline.errors import DependencyMissingError
from defectline.training.dataset import (
    CLASS_NAMES,
    INPUT_SIZE_PX,
    MEAN,
    STD,
    DatasetSpec,
    normalize,
    render_split,
)
from defectline.training.evaluate import classification_metrics, predict_onnx

logger = logging.getLogger(__name__)

MODEL_FILE = "surface_demo.onnx"
SIDECAR_FILE = "surface_demo.json"
OPSET = 18
INPUT_NAME = "images"
OUTPUT_NAME = "logits"


def import_torch() -> ModuleType:
    """Import PyTorch; raise `DependencyMissingError` naming the install command if missing."""
    try:
        return import_module("torch")
    except ImportError as exc:
        raise DependencyMissingError(
            "training the demo model needs PyTorch, which is not installed; "
            "install it with: pip install 'defectline[train]'"
        ) from exc


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = DatasetSpec()
    parser = argparse.ArgumentParser(
        prog="python -m defectline.training.train_demo", description=__doc__
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="Folder for the ONNX file and sidecar; default: the defectline.models package",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="Data generator and training seed"
    )
    parser.add_argument("--train-per-class", type=int, default=defaults.train_per_class)
    parser.add_argument("--val-per-class", type=int, default=defaults.val_per_class)
    parser.add_argument("--test-per-class", type=int, default=defaults.test_per_class)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--learning-rate", type=float, default=3e-3, help="Peak of the one-cycle schedule"
    )
    parser.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        torch = import_torch()
    except DependencyMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    args = parse_args(argv)
    output_dir = args.output_dir or _models_dir()
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.monotonic()

    spec = DatasetSpec(
        seed=args.seed,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        test_per_class=args.test_per_class,
    )
    splits = {}
    for split in ("train", "val", "test"):
        splits[split] = render_split(spec, split)
        logger.info(
            "rendered split=%s images=%d elapsed_s=%.1f",
            split,
            len(splits[split][1]),
            time.monotonic() - started,
        )

    trainer = import_module("defectline.training.trainer")
    network, history = trainer.train(
        torch,
        splits["train"],
        splits["val"],
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
    )

    model_path = output_dir / MODEL_FILE
    trainer.export_onnx(torch, network, model_path, INPUT_NAME, OUTPUT_NAME, OPSET, INPUT_SIZE_PX)
    test_frames, test_labels = splits["test"]
    predictions = predict_onnx(model_path, normalize(test_frames))
    metrics = classification_metrics(test_labels, predictions, CLASS_NAMES)
    wall_time_s = time.monotonic() - started
    logger.info(
        "exported model=%s test_accuracy=%.4f wall_time_s=%.0f",
        model_path,
        metrics["accuracy"],
        wall_time_s,
    )

    sidecar = build_sidecar(
        model_path, spec, args, history, metrics, torch.__version__, wall_time_s
    )
    (output_dir / SIDECAR_FILE).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return 0


def build_sidecar(
    model_path: Path,
    spec: DatasetSpec,
    args: argparse.Namespace,
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    torch_version: str,
    wall_time_s: float,
) -> dict[str, Any]:
    """Describe the exported model: contract, preprocessing, training and test scores."""
    return {
        "model_file": model_path.name,
        "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "size_bytes": model_path.stat().st_size,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": "classification",
        "class_names": list(CLASS_NAMES),
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "layout": "nchw",
            "shape": ["batch", 3, INPUT_SIZE_PX, INPUT_SIZE_PX],
        },
        "output": {"name": OUTPUT_NAME, "kind": "logits", "shape": ["batch", len(CLASS_NAMES)]},
        "opset": OPSET,
        "preprocess": {
            "steps": [
                "decode to BGR uint8",
                "cv2.cvtColor BGR2RGB",
                f"cv2.resize to {INPUT_SIZE_PX}x{INPUT_SIZE_PX} with INTER_AREA, aspect not kept",
                f"x = (pixel / 255 - {MEAN}) / {STD} per channel",
                "transpose to NCHW float32",
            ],
            "width_px": INPUT_SIZE_PX,
            "height_px": INPUT_SIZE_PX,
            "resize": "stretch",
            "interpolation": "area",
            "color": "rgb",
            "scale": 1 / 255,
            "mean": [MEAN] * 3,
            "std": [STD] * 3,
            "layout": "nchw",
        },
        "training": {
            "data_generator": "defectline.training.dataset.render_split",
            "dataset": spec.to_dict(),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "AdamW, one-cycle learning rate",
            "peak_learning_rate": args.learning_rate,
            "augmentation": "random horizontal and vertical flips",
            "threads": args.threads,
            "history": history,
            "wall_time_s": round(wall_time_s, 1),
        },
        "test": {
            "split": "test",
            "measured_with": f"onnxruntime {onnxruntime.__version__}",
            **metrics,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch_version,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "opencv": cv2.__version__,
            "numpy": np.__version__,
        },
    }


def _models_dir() -> Path:
    models = import_module("defectline.models")
    return Path(models.__file__).resolve().parent


if __name__ == "__main__":
    sys.exit(main())
