"""Connected components of a defect mask: one region per blob with area, box and mean score."""

from __future__ import annotations

import cv2
import numpy as np

from defectline.streams.inference.adapters.base import Candidate

CONNECTIVITY = 8  # diagonal neighbours join a blob, as a scratch at 45 degrees should stay one


def mask_regions(
    binary: np.ndarray,
    score_map: np.ndarray,
    class_name: str,
    class_code: int,
) -> list[Candidate]:
    """Split a frame-sized boolean mask into regions; confidence is the mean score of a blob.

    `score_map` contains per-pixel scores in [0, 1] for the same frame pixels.
    """
    frame_area_px = binary.shape[0] * binary.shape[1]
    count, labels, stats, _centroids = cv2.connectedComponentsWithStats(
        binary.astype(np.uint8), connectivity=CONNECTIVITY
    )

    regions: list[Candidate] = []
    for label in range(1, count):  # label 0 is the background
        left = int(stats[label, cv2.CC_STAT_LEFT])
        top = int(stats[label, cv2.CC_STAT_TOP])
        width = int(stats[label, cv2.CC_STAT_WIDTH])
        height = int(stats[label, cv2.CC_STAT_HEIGHT])
        area_px = int(stats[label, cv2.CC_STAT_AREA])

        window = labels[top : top + height, left : left + width] == label
        mean_score = float(score_map[top : top + height, left : left + width][window].mean())
        regions.append(
            Candidate(
                kind="mask",
                class_name=class_name,
                class_code=class_code,
                confidence=min(1.0, max(0.0, mean_score)),
                box=(float(left), float(top), float(left + width), float(top + height)),
                area_px=float(area_px),
                area_pct=100.0 * area_px / frame_area_px,
                mask=window,
            )
        )
    return regions
