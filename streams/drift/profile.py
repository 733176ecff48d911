"""Building a reference profile from the first frames of a camera under one model version."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from defectline.schemas.drift import IMAGE_METRICS, MetricSummary, ReferenceProfile
from defectline.streams.drift.image_stats import detector_values
from defectline.streams.drift.observation import Observation
from defectline.streams.drift.psi import CONFIDENCE_EDGES, confidence_bin, fractions


@dataclass
class ProfileBuilder:
    """Running sums of the frames seen so far; a plain dataclass so it fits in a Faust table."""

    station_id: str = ""
    model_name: str = ""
    model_version: str = ""
    frames: int = 0
    first_sequence: int = 0
    last_sequence: int = 0
    confidence_counts: list[int] = field(default_factory=lambda: [0] * (len(CONFIDENCE_EDGES) - 1))
    class_counts: dict[str, int] = field(default_factory=dict)
    confidence_sum: float = 0.0
    uncertain: int = 0
    image_frames: int = 0
    image_sums: dict[str, float] = field(default_factory=dict)
    image_squares: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileBuilder:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, observation: Observation, uncertain_below: float) -> None:
        """Count one frame into the profile under construction."""
        if self.frames == 0:
            self.station_id = observation.station_id
            self.model_name = observation.model_name
            self.model_version = observation.model_version
            self.first_sequence = observation.sequence
        self.frames += 1
        self.last_sequence = observation.sequence
        self.confidence_counts[confidence_bin(observation.confidence)] += 1
        self.confidence_sum += observation.confidence
        name = observation.class_name
        self.class_counts[name] = self.class_counts.get(name, 0) + 1
        if observation.is_uncertain(uncertain_below):
            self.uncertain += 1

        if observation.image_stats is None:
            return
        self.image_frames += 1
        for metric, value in detector_values(observation.image_stats).items():
            self.image_sums[metric] = self.image_sums.get(metric, 0.0) + value
            self.image_squares[metric] = self.image_squares.get(metric, 0.0) + value * value

    def build(
        self,
        camera_id: str,
        version: int,
        source: str,
        uncertain_below: float,
        built_at: datetime | None = None,
    ) -> ReferenceProfile:
        """Freeze the sums into a profile; raises ValueError before the first frame."""
        if self.frames == 0:
            raise ValueError(
                f"no frames of camera '{camera_id}' were added; cannot build a profile"
            )
        image: dict[str, MetricSummary] = {}
        # Image statistics are summarized only when most frames carried them, so a profile
        # never rests on a handful of frames.
        if self.image_frames >= max(2, self.frames // 2):
            for metric in IMAGE_METRICS:
                mean = self.image_sums[metric] / self.image_frames
                variance = self.image_squares[metric] / self.image_frames - mean * mean
                image[metric.value] = MetricSummary(mean=mean, std=math.sqrt(max(variance, 0.0)))

        return ReferenceProfile(
            camera_id=camera_id,
            station_id=self.station_id,
            model_name=self.model_name,
            model_version=self.model_version,
            version=version,
            source=source,
            built_at=built_at or datetime.now(UTC),
            frames=self.frames,
            first_sequence=self.first_sequence,
            last_sequence=self.last_sequence,
            confidence_edges=CONFIDENCE_EDGES,
            confidence_fractions=tuple(fractions(self.confidence_counts)),
            confidence_mean=self.confidence_sum / self.frames,
            class_fractions={
                name: count / self.frames for name, count in sorted(self.class_counts.items())
            },
            uncertain_below=uncertain_below,
            uncertain_fraction=self.uncertain / self.frames,
            image=image,
        )
