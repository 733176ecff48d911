"""Accuracy and per-class metrics of an exported ONNX classifier, measured with onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort


def predict_onnx(model_path: Path, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Run the model on a preprocessed float32 NCHW batch and return the predicted class indices."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    predictions = []
    for start in range(0, len(inputs), batch_size):
        (logits,) = session.run(None, {input_name: inputs[start : start + batch_size]})
        predictions.append(np.argmax(logits, axis=1))
    return np.concatenate(predictions)


def classification_metrics(
    labels: np.ndarray, predictions: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, Any]:
    """Return accuracy, confusion matrix (rows: true class) and precision/recall/F1 per class."""
    size = len(class_names)
    confusion = np.zeros((size, size), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)

    per_class: dict[str, dict[str, float | int]] = {}
    for index, name in enumerate(class_names):
        true_positive = int(confusion[index, index])
        predicted = int(confusion[:, index].sum())
        support = int(confusion[index, :].sum())
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }

    return {
        "samples": int(labels.size),
        "accuracy": round(float(np.mean(labels == predictions)), 4),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }
