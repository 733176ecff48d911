"""Frame archive in a local directory (the default): one file per key, written atomically."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from defectline.connectors.archive.base import FrameArchive
from defectline.connectors.archive.errors import ArchiveError, ArchiveUnavailableError

logger = logging.getLogger(__name__)


class LocalArchive(FrameArchive):
    """Files under `root`; URIs are file:// URIs of absolute paths."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().absolute()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveUnavailableError(
                f"archive directory {self.root} cannot be created: {exc}; set archive.store.path "
                "to a writable directory"
            ) from exc
        logger.info("frame archive opened type=local path=%s", self.root)

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self.check_key(key)
        target = self.root / key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # A reader never sees a half-written image: write a temporary file, then rename.
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, target)
        except OSError as exc:
            raise ArchiveError(f"archive write failed path={target}: {exc}") from exc
        return target.as_uri()

    def get(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        path = Path(unquote(parsed.path))
        if parsed.scheme != "file" or not path.is_relative_to(self.root):
            raise ArchiveError(
                f"URI {uri} is not a file:// URI under this archive's directory {self.root}"
            )
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ArchiveError(f"archive read failed uri={uri}: {exc}") from exc
