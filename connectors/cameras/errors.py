"""Errors of the camera connectors."""

from __future__ import annotations

from defectline.errors import DefectlineError


class CameraError(DefectlineError):
    """A camera source cannot be created, opened or read."""


class CameraOpenError(CameraError):
    """A camera source could not be opened: a missing folder or file, or a stream that fails."""


class FrameRejectedError(CameraError):
    """One input of a source is unusable (corrupt file) and goes to the dead-letter topic.

    The source stays usable: the next `read()` continues with the next input.
    """

    def __init__(self, reason: str, payload: bytes, source: str, frame_id: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.payload = payload
        self.source = source
        self.frame_id = frame_id


class PublishError(CameraError):
    """Frames could not be handed to Kafka or were not delivered in time."""
