"""Segmentation adapter: U-Net-style per-pixel logits or probabilities to defect regions."""

from __future__ import annotations

import logging

import numpy as np

from defectline.config.models import ModelConfig
from defectline.streams.inference.adapters.base import (
    Findings,
    FrameGeometry,
    ModelAdapter,
    max_scores,
)
from defectline.streams.inference.adapters.regions import mask_regions
from defectline.streams.inference.errors import ModelInputMismatchError, ModelOutputError
from defectline.streams.inference.session import OnnxModel

logger = logging.getLogger(__name__)

PROBABILITY_TOLERANCE = 1e-5


class SegmentationAdapter(ModelAdapter):
    """Per-pixel class maps (batch × C × H × W, or batch × H × W for one class) to regions.

    `class_names` has one name per output channel. With a softmax over channels the
    `background_class` channel means "no defect" and every pixel belongs to its top channel;
    with a sigmoid each channel is a separate defect mask.
    """

    task = "segmentation"

    def __init__(self, model: OnnxModel, config: ModelConfig) -> None:
        super().__init__(model, config)
        self.settings = config.segmentation
        self.channels = self._check_output()
        self.activation = self.settings.activation
        if self.activation == "auto":
            self.activation = "sigmoid" if self.channels == 1 else "softmax"
        background = self.settings.background_class
        if self.activation == "softmax" and self.channels == 1:
            raise ModelInputMismatchError(
                "model.segmentation.activation is 'softmax' but the output has one channel; "
                "use 'sigmoid' or 'auto'"
            )
        if self.activation == "softmax" and background is not None and background >= self.channels:
            raise ModelInputMismatchError(
                f"model.segmentation.background_class is {background} but the output has "
                f"{self.channels} channels; use 0..{self.channels - 1} or null"
            )
        self.background = background if self.activation == "softmax" else None
        self.defect_channels = [c for c in range(self.channels) if c != self.background]

    def _check_output(self) -> int:
        shape = self.model.output_shape
        names = self.config.class_names
        if len(shape) == 3:
            channels = 1
        elif len(shape) == 4 and isinstance(shape[1], int):
            channels = shape[1]
        else:
            raise ModelInputMismatchError(
                f"segmentation output '{self.model.output_name}' has shape {shape}; expected "
                "['batch', channels, height, width] or ['batch', height, width]"
            )
        if len(names) != channels:
            raise ModelInputMismatchError(
                f"segmentation output '{self.model.output_name}' has {channels} channel(s) "
                f"(shape {shape}) but model.class_names has {len(names)}: {list(names)}; list "
                "one class name per output channel, background included"
            )
        return channels

    @property
    def output_names(self) -> list[str]:
        return [self.model.output_name]

    @property
    def labels(self) -> tuple[str, ...]:
        defects = tuple(self.config.class_names[c] for c in self.defect_channels)
        return (self.config.pass_label, *defects)

    @property
    def default_threshold(self) -> float:
        return self.settings.mask_threshold

    def probabilities(self, output: np.ndarray) -> np.ndarray:
        """Return C×H×W per-pixel probabilities of one output row."""
        planes = output[np.newaxis] if output.ndim == 2 else output
        planes = planes.astype(np.float64)
        if not np.all(np.isfinite(planes)):
            raise ModelOutputError(
                f"segmentation output '{self.model.output_name}' contains NaN or infinity"
            )
        if self.settings.output == "probabilities":
            low, high = float(planes.min()), float(planes.max())
            if low < -PROBABILITY_TOLERANCE or high > 1 + PROBABILITY_TOLERANCE:
                raise ModelOutputError(
                    f"model.segmentation.output is 'probabilities' but output "
                    f"'{self.model.output_name}' has values in [{low:.6g}, {high:.6g}]; set it "
                    "to 'logits' if the model returns raw scores"
                )
            return np.clip(planes, 0.0, 1.0)
        if self.activation == "sigmoid":
            return 1.0 / (1.0 + np.exp(-planes))
        shifted = np.exp(planes - planes.max(axis=0, keepdims=True))
        return shifted / shifted.sum(axis=0, keepdims=True)

    def decode(
        self,
        outputs: dict[str, np.ndarray],
        index: int,
        geometry: FrameGeometry,
        allowed: np.ndarray | None,
    ) -> Findings:
        probabilities = self.probabilities(np.asarray(outputs[self.model.output_name][index]))
        frame_planes = [geometry.plane_to_frame(plane) for plane in probabilities]
        winner = np.argmax(np.stack(frame_planes), axis=0) if self.activation == "softmax" else None

        regions = []
        heatmap = np.zeros((geometry.height_px, geometry.width_px), np.float32)
        for code, channel in enumerate(self.defect_channels, start=1):
            plane = frame_planes[channel]
            binary = plane >= self.settings.mask_threshold
            if winner is not None:
                binary &= winner == channel
            if allowed is not None:
                binary &= allowed
            np.maximum(heatmap, plane, out=heatmap)
            regions += mask_regions(binary, plane, self.config.class_names[channel], code)

        return Findings(
            labels=self.labels,
            scores=max_scores(self.labels, regions),
            candidates=regions,
            heatmap=heatmap,
        )
