"""Detection adapter: Ultralytics YOLOv8/v9/v11 ONNX exports, raw (no NMS) or with NMS inside."""

from __future__ import annotations

import logging

import numpy as np

from defectline.config.models import ModelConfig, ResizeMode
from defectline.streams.inference.adapters import metadata
from defectline.streams.inference.adapters.base import (
    Candidate,
    Findings,
    FrameGeometry,
    ModelAdapter,
    max_scores,
)
from defectline.streams.inference.adapters.boxes import nms_per_class, xywh_to_xyxy
from defectline.streams.inference.errors import (
    ModelInputMismatchError,
    ModelLoadError,
    ModelOutputError,
)
from defectline.streams.inference.session import OnnxModel

logger = logging.getLogger(__name__)

# float32 rounding puts a valid probability slightly above 1.
PROBABILITY_TOLERANCE = 1e-5
NMS_ROW_WIDTH = 6  # x1, y1, x2, y2, score, class in Ultralytics exports made with nms=True


class DetectionAdapter(ModelAdapter):
    """Boxes with a class and score, mapped back to frame pixels and filtered with per-class NMS.

    Raw output is batch × (4 + classes) × anchors, each anchor column holding centre x, centre
    y, width, height in model input pixels, then one score per class. Exports that put anchors
    first (batch × anchors × (4 + classes)) are recognised by which axis has 4 + classes.
    """

    task = "detection"

    def __init__(self, model: OnnxModel, config: ModelConfig) -> None:
        super().__init__(model, config)
        self.settings = config.detection
        self.class_names = config.class_names
        self._check_metadata()
        self.format, self.anchors_first = self._resolve_format()
        names = self.class_names
        self._iou = np.array(
            [
                self.settings.class_iou_thresholds.get(name, self.settings.iou_threshold)
                for name in names
            ]
        )
        unknown = sorted(set(self.settings.class_iou_thresholds) - set(names))
        if unknown:
            raise ModelLoadError(
                f"model.detection.class_iou_thresholds names {unknown}, which are not classes "
                f"of the model {list(names)}"
            )

    def _check_metadata(self) -> None:
        meta = self.model.metadata
        names = metadata.class_names(meta)
        if not self.class_names:
            if names is None:
                raise ModelLoadError(
                    f"model {self.model.path} has no 'names' metadata and model.class_names is "
                    "empty; list the detector's classes in model.class_names"
                )
            self.class_names = names
        elif names is not None and len(names) != len(self.class_names):
            raise ModelInputMismatchError(
                f"model.class_names has {len(self.class_names)} names but the model's metadata "
                f"lists {len(names)}: {list(names)}; fix model.class_names or leave it empty"
            )

        pre = self.config.preprocess
        size = metadata.image_size(meta)
        if size is not None and size != (pre.height_px, pre.width_px):
            raise ModelInputMismatchError(
                f"model metadata imgsz is {list(size)} (height, width) but model.preprocess is "
                f"{pre.height_px}x{pre.width_px}; set height_px={size[0]} and width_px={size[1]}"
            )
        step = metadata.stride(meta)
        if step is not None and (pre.width_px % step or pre.height_px % step):
            raise ModelInputMismatchError(
                f"model.preprocess size {pre.width_px}x{pre.height_px} px is not a multiple of "
                f"the model stride {step}; use a multiple of {step}"
            )
        if pre.resize is not ResizeMode.LETTERBOX:
            logger.warning(
                "detector preprocess uses resize=%s; Ultralytics models are trained on "
                "letterboxed input model=%s",
                pre.resize.value,
                self.model.name,
            )

    def _resolve_format(self) -> tuple[str, bool]:
        shape = self.model.output_shape
        width = 4 + len(self.class_names)
        if len(shape) != 3:
            raise ModelInputMismatchError(
                f"detector output '{self.model.output_name}' has shape {shape}; expected "
                f"['batch', {width}, 'anchors'] (raw) or ['batch', 'detections', 6] (NMS inside)"
            )
        wanted = self.settings.format
        # Ultralytics puts channels before anchors; that reading wins when both axes would fit.
        if wanted != "nms" and shape[1] == width:
            return "raw", False
        if wanted != "raw" and shape[2] == NMS_ROW_WIDTH:
            return "nms", False
        if wanted != "nms" and shape[2] == width:
            return "raw", True
        raise ModelInputMismatchError(
            f"detector output '{self.model.output_name}' has shape {shape}, which does not fit "
            f"model.detection.format '{wanted}' with {len(self.class_names)} classes "
            f"{list(self.class_names)}: raw needs ['batch', {width}, 'anchors'], nms needs "
            "['batch', 'detections', 6]; check class_names and format"
        )

    @property
    def output_names(self) -> list[str]:
        return [self.model.output_name]

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.config.pass_label, *self.class_names)

    @property
    def default_threshold(self) -> float:
        return self.settings.confidence_threshold

    def describe(self) -> str:
        return f"{super().describe()} format={self.format} anchors_first={self.anchors_first}"

    def decode(
        self,
        outputs: dict[str, np.ndarray],
        index: int,
        geometry: FrameGeometry,
        allowed: np.ndarray | None,
    ) -> Findings:
        output = np.asarray(outputs[self.model.output_name][index], dtype=np.float64)
        if self.format == "raw":
            boxes, scores, classes = self.decode_raw(output)
        else:
            boxes, scores, classes = self.decode_nms(output)

        candidates: list[Candidate] = []
        for box, score, class_index in zip(boxes, scores, classes, strict=True):
            frame_box = geometry.box_to_frame(*box)
            if not _is_allowed(frame_box, allowed):
                continue
            area_px = (frame_box[2] - frame_box[0]) * (frame_box[3] - frame_box[1])
            candidates.append(
                Candidate(
                    kind="box",
                    class_name=self.class_names[int(class_index)],
                    class_code=int(class_index) + 1,
                    confidence=float(score),
                    box=frame_box,
                    area_px=float(area_px),
                    area_pct=float(100.0 * area_px / geometry.area_px),
                )
            )
        return Findings(
            labels=self.labels, scores=max_scores(self.labels, candidates), candidates=candidates
        )

    def decode_raw(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode one raw row to boxes (x1, y1, x2, y2 in model pixels), scores and classes."""
        rows = output if self.anchors_first else output.T  # anchors × (4 + classes)
        class_scores = rows[:, 4:]
        if self.settings.scores == "logits":
            class_scores = 1.0 / (1.0 + np.exp(-class_scores))
        else:
            _check_probabilities(class_scores, self.model.output_name)

        classes = np.argmax(class_scores, axis=1)
        scores = class_scores[np.arange(len(rows)), classes]
        keep = scores >= self.settings.confidence_threshold
        boxes = xywh_to_xyxy(rows[keep, :4])
        scores, classes = scores[keep], classes[keep]

        kept = nms_per_class(boxes, scores, classes, self._iou, self.settings.max_detections)
        return boxes[kept], scores[kept], classes[kept]

    def decode_nms(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode one row of an export with NMS inside: rows of x1, y1, x2, y2, score, class."""
        if self.settings.scores == "probabilities":
            _check_probabilities(output[:, 4:5], self.model.output_name)
        keep = output[:, 4] >= self.settings.confidence_threshold
        rows = output[keep][: self.settings.max_detections]
        classes = rows[:, 5]
        bad = classes[(classes < 0) | (classes >= len(self.class_names)) | (classes % 1 != 0)]
        if bad.size:
            raise ModelOutputError(
                f"detector output '{self.model.output_name}' has class index {bad[0]:g}; "
                f"expected an integer in 0..{len(self.class_names) - 1} for class_names "
                f"{list(self.class_names)}"
            )
        return rows[:, :4], rows[:, 4], classes.astype(np.int64)


def _check_probabilities(scores: np.ndarray, output_name: str) -> None:
    if scores.size == 0:
        return
    low, high = float(scores.min()), float(scores.max())
    if low < -PROBABILITY_TOLERANCE or high > 1 + PROBABILITY_TOLERANCE:
        raise ModelOutputError(
            f"detector output '{output_name}' has class scores in [{low:.6g}, {high:.6g}] but "
            "model.detection.scores is 'probabilities' (values in [0, 1]); the output axes may "
            "be swapped, or set model.detection.scores to 'logits'"
        )


def _is_allowed(box: tuple[float, float, float, float], allowed: np.ndarray | None) -> bool:
    """Whether the box centre lies on an inspected pixel."""
    if allowed is None:
        return True
    height_px, width_px = allowed.shape
    x_px = min(width_px - 1, max(0, int((box[0] + box[2]) / 2)))
    y_px = min(height_px - 1, max(0, int((box[1] + box[3]) / 2)))
    return bool(allowed[y_px, x_px])
