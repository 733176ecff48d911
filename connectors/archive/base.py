"""The frame archive contract: store an image under a key, return a URI that finds it again."""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from datetime import datetime

from defectline.config.models import LocalArchiveConfig, S3ArchiveConfig
from defectline.connectors.archive.errors import ArchiveError

logger = logging.getLogger(__name__)

UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def evidence_key(station_id: str, camera_id: str, frame_id: str, captured_at: datetime) -> str:
    """Key of a frame's evidence image: station/camera/YYYY/MM/DD/frame.jpg, path-safe."""
    frame = UNSAFE_KEY_CHARS.sub("_", frame_id).lstrip(".") or "_"
    day = captured_at.strftime("%Y/%m/%d")
    return f"{station_id}/{camera_id}/{day}/{frame}.jpg"


class FrameArchive(ABC):
    """Stores images by key; one archive serves every camera of a worker.

    Implementations are synchronous and may block on disk or network, so asyncio callers run
    them in a thread. Example::

        archive = create_archive(LocalArchiveConfig(path=Path("/var/lib/defectline/archive")))
        uri = archive.put("station-1/cam-1/2026/01/02/f42.jpg", jpeg_bytes, "image/jpeg")
        assert archive.get(uri) == jpeg_bytes
    """

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store `data` under `key` (replacing an older copy) and return its URI."""

    @abstractmethod
    def get(self, uri: str) -> bytes:
        """Return the bytes stored at a URI this archive returned."""

    def close(self) -> None:  # noqa: B027 - optional hook, most archives hold no client
        """Release clients and connections; the default has none."""

    @staticmethod
    def check_key(key: str) -> None:
        """Raise `ArchiveError` for keys that could leave the archive root."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ArchiveError(
                f"archive key {key!r} is invalid; use relative 'a/b/c.jpg' keys without empty, "
                "'.' or '..' parts"
            )


def create_archive(config: LocalArchiveConfig | S3ArchiveConfig) -> FrameArchive:
    """Open the configured archive; S3 needs the `s3` extra and imports boto3 only then."""
    if isinstance(config, LocalArchiveConfig):
        from defectline.connectors.archive.local import LocalArchive

        return LocalArchive(config.path)
    from defectline.connectors.archive.s3 import S3Archive

    return S3Archive(config)
