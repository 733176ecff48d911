"""OpenCV camera: frames from cv2.VideoCapture on a video file, an RTSP/HTTP URL or a device index.

Streams and devices reconnect after `reconnect_delay_ms` when opening or reading fails. A video
file ends the source at its end unless `loop_file` is set; a missing or unreadable file is an
error at open. User names and passwords in URLs never reach logs or the `source` header.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cv2

from defectline.config import models
from defectline.connectors.cameras.base import CameraSource, CapturedFrame
from defectline.connectors.cameras.errors import CameraOpenError
from defectline.connectors.cameras.imaging import encode_image

logger = logging.getLogger(__name__)

_SECRET_QUERY_KEYS = {
    "password",
    "passwd",
    "pwd",
    "pass",
    "token",
    "access_token",
    "key",
    "apikey",
    "secret",
}


def scrub_uri(uri: str) -> str:
    """Return `uri` with the user name, password and secret query values replaced by '***'."""
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(key, "***" if key.lower() in _SECRET_QUERY_KEYS else value) for key, value in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class OpenCvSource(CameraSource):
    """Source for `type: opencv` cameras."""

    def open(self) -> None:
        settings = self.camera.source
        if not isinstance(settings, models.OpenCvSource):
            raise TypeError(f"OpenCvSource needs an opencv source config, got {settings.type!r}")
        self.settings = settings
        self.display_uri = scrub_uri(settings.uri)
        uri = settings.uri.strip()
        # Device nodes such as /dev/video0 are cameras, not files, although they are paths.
        self.is_file = (
            not uri.isdigit() and not urlsplit(uri).netloc and not uri.startswith("/dev/")
        )
        self._frames_since_start = 0
        self._min_interval_s = 1.0 / settings.max_fps if settings.max_fps else 0.0
        self._last_frame_s = float("-inf")
        self._capture: cv2.VideoCapture | None = None

        if self.is_file and not Path(settings.uri).is_file():
            raise CameraOpenError(
                f"camera '{self.camera.id}': video file {settings.uri} not found; "
                "check cameras[].source.uri (a file path, an rtsp:// or http:// URL, "
                "or a device index)"
            )
        if self._connect() is None and self.is_file:
            raise CameraOpenError(
                f"camera '{self.camera.id}': OpenCV cannot open video file {settings.uri}; "
                "check that it is a video in a format this OpenCV build reads "
                "(for example MJPG .avi)"
            )

    def read(self) -> CapturedFrame | None:
        while not self.stop.is_set():
            capture = self._capture or self._reconnect()
            if capture is None:
                continue

            ok, image = capture.read()
            if not ok or image is None:
                if self._handle_read_failure(capture):
                    continue
                return None

            self._frames_since_start += 1
            if not self._due_now():
                continue
            payload = encode_image(image, self.camera.encoding, self.camera.jpeg_quality)
            return CapturedFrame(
                payload,
                self.camera.encoding,
                int(image.shape[1]),
                int(image.shape[0]),
                datetime.now(UTC),
                source=self.display_uri,
            )
        return None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
            logger.info("camera closed camera=%s uri=%s", self.camera.id, self.display_uri)

    def _connect(self) -> cv2.VideoCapture | None:
        uri = self.settings.uri.strip()
        target: int | str = int(uri) if uri.isdigit() else uri
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            return None
        self._capture = capture
        logger.info(
            "camera opened camera=%s uri=%s backend=%s",
            self.camera.id,
            self.display_uri,
            capture.getBackendName(),
        )
        return capture

    def _reconnect(self) -> cv2.VideoCapture | None:
        """Wait `reconnect_delay_ms` and open the stream again; None when it still fails."""
        delay_ms = self.settings.reconnect_delay_ms
        logger.warning(
            "camera unavailable camera=%s uri=%s; reconnecting in %d ms",
            self.camera.id,
            self.display_uri,
            delay_ms,
        )
        if self.stop.wait(delay_ms / 1000):
            return None
        return self._connect()

    def _handle_read_failure(self, capture: cv2.VideoCapture) -> bool:
        """Handle a failed read; return True to keep reading, False when the source is finished."""
        if self.is_file:
            if not self.settings.loop_file:
                logger.info("video file ended camera=%s uri=%s", self.camera.id, self.display_uri)
                return False
            if self._frames_since_start == 0:
                logger.warning(
                    "video file has no readable frame, not looping camera=%s uri=%s",
                    self.camera.id,
                    self.display_uri,
                )
                return False
            self._frames_since_start = 0
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            logger.debug("video file restarted camera=%s uri=%s", self.camera.id, self.display_uri)
            return True

        logger.warning("camera read failed camera=%s uri=%s", self.camera.id, self.display_uri)
        capture.release()
        self._capture = None
        return True

    def _due_now(self) -> bool:
        """Apply `max_fps`: pace a video file, drop live frames that arrive too early."""
        if not self._min_interval_s:
            return True
        wait_s = self._last_frame_s + self._min_interval_s - time.monotonic()
        if wait_s > 0:
            if not self.is_file:
                return False
            # A file can be read at any speed, so dropping would skip most of it: wait instead.
            if self.stop.wait(wait_s):
                return False
        self._last_frame_s = time.monotonic()
        return True
