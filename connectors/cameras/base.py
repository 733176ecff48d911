"""Camera source contract: `CameraSource`, the `CapturedFrame` it returns and the type registry."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module
from pathlib import Path
from types import TracebackType

from defectline.config.models import CameraConfig
from defectline.connectors.cameras.errors import CameraError
from defectline.schemas.frames import Encoding

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapturedFrame:
    """One encoded image from a camera source, with its size, capture time and identity."""

    payload: bytes
    encoding: Encoding
    width_px: int
    height_px: int
    captured_at: datetime
    """Aware UTC time of capture (file sources: the file's modification time)."""
    frame_id: str | None = None
    """Stable id from the source of a file; None for live sources, which get one from the runner."""
    part_id: str | None = None
    source: str | None = None
    """File name or camera URI with credentials removed."""
    truth: str | None = None
    """Known class of a rendered frame ('ok' or a defect kind), None for real cameras; not sent."""


class CameraSource(ABC):
    """A camera that returns encoded frames one by one; subclass it to add a camera kind.

    `read()` blocks until the next frame, returns None once the source is finished (end of a
    file, `watch: false` folder done, or `stop` set), and raises `FrameRejectedError` for one
    unusable input, after which reading continues. Waits inside a source use `self.stop.wait()`
    so a stop request ends them promptly.

    Example, a source reading frames from a vendor SDK::

        class VendorSource(CameraSource):
            def open(self) -> None:
                self._device = vendor_sdk.connect(self.camera.id)

            def read(self) -> CapturedFrame | None:
                if self.stop.is_set():
                    return None
                image = self._device.grab(timeout_ms=1000)
                payload = encode_image(image, self.camera.encoding, self.camera.jpeg_quality)
                return CapturedFrame(payload, self.camera.encoding, image.shape[1], image.shape[0],
                                     datetime.now(UTC))

            def close(self) -> None:
                self._device.disconnect()

        register_source("vendor", VendorSource)
    """

    def __init__(
        self,
        camera: CameraConfig,
        *,
        stop: threading.Event | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.camera = camera
        self.stop = stop or threading.Event()
        self.state_dir = state_dir or default_state_dir(camera.id)

    @abstractmethod
    def open(self) -> None:
        """Connect to the camera or folder; raise `CameraOpenError` when that is impossible."""

    @abstractmethod
    def read(self) -> CapturedFrame | None:
        """Return the next frame, or None when the source has no more frames."""

    def close(self) -> None:
        """Release the camera; the default does nothing."""
        return

    def mark_delivered(self, frame_id: str) -> None:
        """Record that Kafka acknowledged the frame (or its dead letter) with this source frame id.

        Sources with stable frame ids (folders) remember it so a restart does not send it again.
        """
        return

    def frames(self) -> Iterator[CapturedFrame]:
        """Yield frames until the source ends; a rejected input raises `FrameRejectedError`."""
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> CameraSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def default_state_dir(camera_id: str) -> Path:
    """Return the default state folder of a camera: `.defectline/cameras/<camera id>`."""
    return Path(".defectline") / "cameras" / camera_id


SourceFactory = Callable[..., CameraSource]

_BUILTIN_SOURCES = {
    "synthetic": ("defectline.connectors.cameras.synthetic", "SyntheticSource"),
    "folder": ("defectline.connectors.cameras.folder", "FolderSource"),
    "opencv": ("defectline.connectors.cameras.opencv", "OpenCvSource"),
}
_registry: dict[str, SourceFactory] = {}


def register_source(type_name: str, factory: SourceFactory) -> None:
    """Register a camera source class under the `type` key of its configuration."""
    _registry[type_name] = factory


def create_source(
    camera: CameraConfig,
    *,
    stop: threading.Event | None = None,
    state_dir: Path | None = None,
) -> CameraSource:
    """Create the source that `camera.source.type` names; it is not opened yet."""
    type_name = camera.source.type
    factory = _registry.get(type_name)
    if factory is None and type_name in _BUILTIN_SOURCES:
        module_name, class_name = _BUILTIN_SOURCES[type_name]
        factory = getattr(import_module(module_name), class_name)
        register_source(type_name, factory)
    if factory is None:
        known = sorted(set(_registry) | set(_BUILTIN_SOURCES))
        raise CameraError(
            f"camera '{camera.id}' has source type '{type_name}', which is not registered; "
            f"known types: {known}"
        )
    return factory(camera, stop=stop, state_dir=state_dir)
