"""Anomaly adapter: anomalib-style exports with image score, anomaly map and optional mask."""

from __future__ import annotations

import logging

import numpy as np

from defectline.config.models import ModelConfig
from defectline.streams.inference.adapters import metadata
from defectline.streams.inference.adapters.base import (
    Candidate,
    Findings,
    FrameGeometry,
    ModelAdapter,
)
from defectline.streams.inference.adapters.regions import mask_regions
from defectline.streams.inference.errors import (
    ModelInputMismatchError,
    ModelLoadError,
    ModelOutputError,
)
from defectline.streams.inference.session import OnnxModel

logger = logging.getLogger(__name__)

# Output names of anomalib's exported inference models.
DEFAULT_SCORE_OUTPUT = "pred_score"
DEFAULT_MAP_OUTPUT = "anomaly_map"
DEFAULT_MASK_OUTPUT = "pred_mask"
NORMALISED_THRESHOLD = 0.5  # min-max normalisation puts the threshold here


class AnomalyAdapter(ModelAdapter):
    """Image anomaly score, normalised to [0, 1], decides; the map becomes regions.

    With min-max normalisation a raw value x becomes (x - threshold) / (max - min) + 0.5,
    clipped to [0, 1], as anomalib's normalisation does, so a part is anomalous from 0.5 on.
    Without a score output the image score is the highest normalised map value. When a station
    sets ROI or ignore areas and the model has a map, the image score is the highest normalised
    map value inside the inspected area instead of the model's own score.
    """

    task = "anomaly"

    def __init__(self, model: OnnxModel, config: ModelConfig) -> None:
        super().__init__(model, config)
        self.settings = config.anomaly
        self.score_output = self._pick(self.settings.score_output, DEFAULT_SCORE_OUTPUT, (1, 2))
        self.map_output = self._pick(self.settings.map_output, DEFAULT_MAP_OUTPUT, (3, 4))
        self.mask_output = self._pick(self.settings.mask_output, DEFAULT_MASK_OUTPUT, ())
        if self.score_output is None and self.map_output is None:
            raise ModelInputMismatchError(
                f"anomaly model {self.model.path} has outputs {self.model.outputs} but neither an "
                "image score (rank 1 or 2) nor an anomaly map (rank 3 or 4); set "
                "model.anomaly.score_output or map_output"
            )
        self._resolve_normalisation()

    def _pick(self, configured: str | None, default: str, ranks: tuple[int, ...]) -> str | None:
        outputs = self.model.outputs
        if configured is not None:
            if configured not in outputs:
                raise ModelInputMismatchError(
                    f"model.anomaly output '{configured}' is not an output of {self.model.path}; "
                    f"outputs are {list(outputs)}"
                )
            return configured
        if default in outputs:
            return default
        by_rank = [name for name, shape in outputs.items() if len(shape) in ranks]
        return by_rank[0] if len(by_rank) == 1 else None

    def _resolve_normalisation(self) -> None:
        settings, meta = self.settings, self.model.metadata
        self.image_threshold = settings.image_threshold
        if self.image_threshold is None:
            self.image_threshold = metadata.float_value(meta, "image_threshold")
        self.pixel_threshold = settings.pixel_threshold
        if self.pixel_threshold is None:
            self.pixel_threshold = metadata.float_value(meta, "pixel_threshold")
        if self.pixel_threshold is None:
            self.pixel_threshold = self.image_threshold
        self.min_score = settings.min_score
        if self.min_score is None:
            self.min_score = metadata.float_value(meta, "min")
        self.max_score = settings.max_score
        if self.max_score is None:
            self.max_score = metadata.float_value(meta, "max")

        if settings.normalization == "none":
            return
        missing = [
            name
            for name, value in (
                ("image_threshold", self.image_threshold),
                ("min_score", self.min_score),
                ("max_score", self.max_score),
            )
            if value is None
        ]
        if missing:
            raise ModelLoadError(
                f"anomaly model {self.model.path} needs {missing} for min-max normalisation but "
                "neither model.anomaly nor the ONNX metadata (keys image_threshold, "
                "pixel_threshold, min, max) sets them; set them in model.anomaly, or set "
                "model.anomaly.normalization to 'none' if the model returns scores in [0, 1]"
            )
        if self.max_score <= self.min_score:  # type: ignore[operator]
            raise ModelLoadError(
                f"anomaly normalisation max {self.max_score} is not above min {self.min_score}; "
                "check model.anomaly.min_score and max_score or the model metadata"
            )

    @property
    def output_names(self) -> list[str]:
        names = [self.score_output, self.map_output, self.mask_output]
        return [name for name in names if name is not None]

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.config.pass_label, self.settings.class_name)

    @property
    def default_threshold(self) -> float:
        if self.settings.normalization == "none" and self.image_threshold is not None:
            return self.image_threshold
        return NORMALISED_THRESHOLD

    def normalise(self, values: np.ndarray, threshold: float | None) -> np.ndarray:
        """Map raw scores to [0, 1] with the threshold at 0.5; check them without normalisation."""
        values = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ModelOutputError("anomaly model output contains NaN or infinity")
        if self.settings.normalization == "none":
            low, high = float(values.min()), float(values.max())
            if low < -1e-5 or high > 1 + 1e-5:
                raise ModelOutputError(
                    f"model.anomaly.normalization is 'none' but the output has values in "
                    f"[{low:.6g}, {high:.6g}], outside [0, 1]; use 'min_max' with thresholds"
                )
            return np.clip(values, 0.0, 1.0)
        span = self.max_score - self.min_score  # type: ignore[operator]
        return np.clip((values - threshold) / span + NORMALISED_THRESHOLD, 0.0, 1.0)

    def decode(
        self,
        outputs: dict[str, np.ndarray],
        index: int,
        geometry: FrameGeometry,
        allowed: np.ndarray | None,
    ) -> Findings:
        score_map = binary = None
        if self.map_output is not None:
            raw_map = np.asarray(outputs[self.map_output][index]).reshape(
                outputs[self.map_output].shape[-2:]
            )
            score_map = geometry.plane_to_frame(self.normalise(raw_map, self.pixel_threshold)).clip(
                0.0, 1.0
            )
            binary = self._binary(outputs, index, geometry, score_map)
            if allowed is not None:
                binary &= allowed

        image_score = self._image_score(outputs, index, score_map, allowed)
        regions = (
            [] if binary is None else mask_regions(binary, score_map, self.settings.class_name, 1)
        )
        candidate = self._image_candidate(image_score, binary, geometry)
        return Findings(
            labels=self.labels,
            scores={self.labels[0]: 1.0 - image_score, self.labels[1]: image_score},
            candidates=[candidate],
            regions=regions,
            heatmap=None if score_map is None else score_map.astype(np.float32),
        )

    def _binary(
        self,
        outputs: dict[str, np.ndarray],
        index: int,
        geometry: FrameGeometry,
        score_map: np.ndarray,
    ) -> np.ndarray:
        if self.mask_output is None:
            pixel_threshold = (
                self.pixel_threshold
                if self.settings.normalization == "none" and self.pixel_threshold is not None
                else NORMALISED_THRESHOLD
            )
            return score_map >= pixel_threshold
        mask = np.asarray(outputs[self.mask_output][index], dtype=np.float32)
        mask = mask.reshape(mask.shape[-2:])
        return geometry.plane_to_frame(mask) >= 0.5

    def _image_score(
        self,
        outputs: dict[str, np.ndarray],
        index: int,
        score_map: np.ndarray | None,
        allowed: np.ndarray | None,
    ) -> float:
        if score_map is not None and (allowed is not None or self.score_output is None):
            inside = score_map if allowed is None else score_map[allowed]
            return float(inside.max()) if inside.size else 0.0
        raw = np.asarray(outputs[self.score_output][index], dtype=np.float64).reshape(-1)
        if raw.size != 1:
            raise ModelOutputError(
                f"anomaly score output '{self.score_output}' has {raw.size} values per frame; "
                "expected one image score"
            )
        return float(self.normalise(raw, self.image_threshold)[0])

    def _image_candidate(
        self, image_score: float, binary: np.ndarray | None, geometry: FrameGeometry
    ) -> Candidate:
        box = (0.0, 0.0, float(geometry.width_px), float(geometry.height_px))
        area_px = float(geometry.area_px)
        if binary is not None:
            ys, xs = np.nonzero(binary)
            area_px = float(len(xs))
            if len(xs):
                box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        return Candidate(
            kind="image",
            class_name=self.settings.class_name,
            class_code=1,
            confidence=image_score,
            box=box,
            area_px=area_px,
            area_pct=100.0 * area_px / geometry.area_px,
        )
