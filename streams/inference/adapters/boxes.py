"""Box arithmetic for detectors: centre to corner form and class-aware non-maximum suppression."""

from __future__ import annotations

import numpy as np


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Convert N×4 (centre x, centre y, width, height) to N×4 (x1, y1, x2, y2)."""
    centre = boxes[:, :2]
    half = boxes[:, 2:4] / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def iou_one_to_many(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x1, y1, x2, y2) box with each row of N×4 `others`."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def nms_per_class(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    iou_thresholds: np.ndarray,
    max_detections: int,
) -> np.ndarray:
    """Greedy NMS within each class; return kept indexes, highest score first.

    A box is suppressed by a higher-scoring box of the same class whose IoU with it is above
    that class's threshold, `iou_thresholds[class]`. Boxes of different classes never
    suppress each other.
    """
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for position, index in enumerate(order):
        if suppressed[index]:
            continue
        kept.append(int(index))
        if len(kept) >= max_detections:
            break
        rest = order[position + 1 :]
        rest = rest[(~suppressed[rest]) & (classes[rest] == classes[index])]
        if rest.size == 0:
            continue
        overlaps = iou_one_to_many(boxes[index], boxes[rest])
        suppressed[rest[overlaps > iou_thresholds[classes[index]]]] = True
    return np.asarray(kept, dtype=np.int64)
