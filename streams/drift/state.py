"""Per-camera drift state: a JSON-compatible dataclass the worker keeps in a Faust table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from defectline.schemas.drift import ReferenceProfile
from defectline.streams.drift.cusum import Cusum
from defectline.streams.drift.profile import ProfileBuilder


@dataclass
class Episode:
    """An open drift episode; `causes` are DriftCause dicts of its start event."""

    number: int
    episode_id: str
    start_sequence: int
    onset_sequence: int
    causes: list[dict[str, Any]]
    calm_frames: int = 0


@dataclass
class CameraState:
    """Everything the detectors remember about one camera between frames.

    `window` holds (confidence, class name, uncertain flag, sequence) of the latest frames.
    `smoothed` holds an exponentially weighted mean per image metric on the detector scale.
    """

    reference: dict[str, Any] | None = None
    reference_version: int = 0
    builder: dict[str, Any] | None = None
    last_captured_at: str | None = None
    window: list[list[Any]] = field(default_factory=list)
    cusums: dict[str, dict[str, Any]] = field(default_factory=dict)
    smoothed: dict[str, float] = field(default_factory=dict)
    episode: dict[str, Any] | None = None
    episodes: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CameraState:
        return cls(**data) if data else cls()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # --- typed views of the JSON fields ---

    def profile(self) -> ReferenceProfile | None:
        return None if self.reference is None else ReferenceProfile.model_validate(self.reference)

    def set_profile(self, profile: ReferenceProfile) -> None:
        """Adopt `profile` and clear everything measured against the previous one."""
        self.reference = profile.model_dump(mode="json", by_alias=True)
        self.reference_version = max(self.reference_version, profile.version)
        self.builder = None
        self.window = []
        self.cusums = {}
        self.smoothed = {name: summary.mean for name, summary in profile.image.items()}
        self.episode = None

    def profile_builder(self) -> ProfileBuilder:
        if self.builder is None:
            return ProfileBuilder()
        return ProfileBuilder.from_dict(self.builder)

    def cusum(self, metric: str) -> Cusum:
        data = self.cusums.get(metric)
        return Cusum.new() if data is None else Cusum.from_dict(data)

    def open_episode(self) -> Episode | None:
        return None if self.episode is None else Episode(**self.episode)

    def is_replay(self, captured_at: datetime) -> bool:
        """Tell whether a frame is not newer than the last one counted, and remember it if new."""
        if self.last_captured_at is not None:
            if captured_at <= datetime.fromisoformat(self.last_captured_at):
                return True
        self.last_captured_at = captured_at.isoformat()
        return False
