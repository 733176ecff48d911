"""Model adapters, one per model family, registered under their `task` key."""

from defectline.streams.inference.adapters.anomaly import AnomalyAdapter
from defectline.streams.inference.adapters.base import (
    Candidate,
    Findings,
    FrameGeometry,
    ModelAdapter,
)
from defectline.streams.inference.adapters.classification import ClassificationAdapter
from defectline.streams.inference.adapters.detection import DetectionAdapter
from defectline.streams.inference.adapters.registry import create_adapter, detect_task
from defectline.streams.inference.adapters.segmentation import SegmentationAdapter

__all__ = [
    "AnomalyAdapter",
    "Candidate",
    "ClassificationAdapter",
    "DetectionAdapter",
    "Findings",
    "FrameGeometry",
    "ModelAdapter",
    "SegmentationAdapter",
    "create_adapter",
    "detect_task",
]
