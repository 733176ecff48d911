"""Synthetic camera: rendered metal surfaces with a configurable share of defects, paced at `fps`.

The random stream is seeded from the config, so two runs with the same seed render the same
frames with the same labels. A lighting schedule changes brightness and blur from a given
frame number on, to show how the model copes with a drifting camera.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import numpy as np

from defectline.config import models
from defectline.connectors.cameras.base import CameraSource, CapturedFrame
from defectline.connectors.cameras.errors import CameraOpenError
from defectline.connectors.cameras.imaging import encode_image
from defectline.connectors.cameras.render import DEFECT_KINDS, render_surface

logger = logging.getLogger(__name__)

OK_LABEL = "ok"


def lighting_at(
    schedule: tuple[models.LightingChange, ...], frame_index: int
) -> tuple[float, float]:
    """Return (brightness_gain, blur_sigma_px) of the last step begun by `frame_index`."""
    gain, blur = 1.0, 0.0
    for step in sorted(schedule, key=lambda item: item.from_frame):
        if step.from_frame <= frame_index:
            gain, blur = step.brightness_gain, step.blur_sigma_px
    return gain, blur


class SyntheticSource(CameraSource):
    """Source for `type: synthetic` cameras."""

    def open(self) -> None:
        settings = self.camera.source
        if not isinstance(settings, models.SyntheticSource):
            raise TypeError(
                f"SyntheticSource needs a synthetic source config, got {settings.type!r}"
            )
        unknown = [kind for kind in settings.defect_kinds if kind not in DEFECT_KINDS]
        if unknown:
            raise CameraOpenError(
                f"camera '{self.camera.id}': defect_kinds {unknown} are unknown; "
                f"choose from {list(DEFECT_KINDS)}"
            )
        if settings.defect_rate_pct > 0 and not settings.defect_kinds:
            raise CameraOpenError(
                f"camera '{self.camera.id}': defect_rate_pct is {settings.defect_rate_pct} but "
                "defect_kinds is empty; list at least one kind or set the rate to 0"
            )

        self.settings = settings
        self._rng = np.random.default_rng(settings.seed)
        self._frame_index = 0
        self._period_s = 1.0 / settings.fps
        self._next_due_s = time.monotonic()
        logger.info(
            "synthetic camera opened camera=%s size=%dx%d fps=%.1f defect_rate_pct=%.1f seed=%d",
            self.camera.id,
            settings.width_px,
            settings.height_px,
            settings.fps,
            settings.defect_rate_pct,
            settings.seed,
        )

    def read(self) -> CapturedFrame | None:
        # Pace on a fixed timetable rather than sleeping a period after each frame, so the mean
        # rate stays at `fps` even when rendering and publishing take part of the period. A source
        # that fell behind continues from now instead of sending a burst to catch up.
        delay_s = self._next_due_s - time.monotonic()
        if delay_s > 0 and self.stop.wait(delay_s):
            return None
        if self.stop.is_set():
            return None
        self._next_due_s = max(self._next_due_s + self._period_s, time.monotonic())

        kind = self._draw_kind()
        gain, blur = lighting_at(self.settings.schedule, self._frame_index)
        if self._frame_index in {step.from_frame for step in self.settings.schedule}:
            logger.info(
                "lighting changed camera=%s frame_index=%d brightness_gain=%.2f blur_sigma_px=%.1f",
                self.camera.id,
                self._frame_index,
                gain,
                blur,
            )
        image = render_surface(
            self._rng, self.settings.width_px, self.settings.height_px, kind, gain, blur
        )
        self._frame_index += 1

        payload = encode_image(image, self.camera.encoding, self.camera.jpeg_quality)
        return CapturedFrame(
            payload=payload,
            encoding=self.camera.encoding,
            width_px=self.settings.width_px,
            height_px=self.settings.height_px,
            captured_at=datetime.now(UTC),
            source=f"synthetic:seed={self.settings.seed}",
            truth=kind or OK_LABEL,
        )

    def _draw_kind(self) -> str | None:
        if self._rng.random() * 100 >= self.settings.defect_rate_pct:
            return None
        return self.settings.defect_kinds[int(self._rng.integers(len(self.settings.defect_kinds)))]
