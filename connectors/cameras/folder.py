"""Folder camera: image files that another system (an AOI station) writes into a folder.

Files already present are sent first, oldest modification time first, then new files as they
appear. A file is read once its size and modification time have been stable for `settle_ms`, so
a file still being written is not sent half-finished. Files are sent as stored, byte for byte.

Each file gets a stable frame id from its relative path, size and modification time. The ids of
files Kafka acknowledged are appended to a small state file, so a restarted connector does not
send them again. A file replaced by new content gets a new id and is sent.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from defectline.config import models
from defectline.connectors.cameras.base import CameraSource, CapturedFrame
from defectline.connectors.cameras.errors import CameraOpenError, FrameRejectedError
from defectline.connectors.cameras.imaging import decoded_size, detect_encoding

logger = logging.getLogger(__name__)

STATE_FILE = "sent-files.txt"
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._/-]")


@dataclass(frozen=True)
class _FileStat:
    relative: str
    path: Path
    size_bytes: int
    mtime_ns: int

    @property
    def frame_id(self) -> str:
        return file_frame_id(self.relative, self.size_bytes, self.mtime_ns)


@dataclass
class _Pending:
    size_bytes: int
    mtime_ns: int
    stable_since_s: float


def file_frame_id(relative_path: str, size_bytes: int, mtime_ns: int) -> str:
    """Return the stable frame id of a file version: its path (made id-safe) and a short hash.

    The hash covers path, size and modification time, so a rewritten file gets a new id while a
    replay of the same file keeps its id.
    """
    digest = hashlib.sha256(f"{relative_path}\0{size_bytes}\0{mtime_ns}".encode()).hexdigest()[:12]
    readable = _UNSAFE_ID_CHARS.sub("_", relative_path)[-200:]
    return f"{readable}@{digest}"


class FolderSource(CameraSource):
    """Source for `type: folder` cameras."""

    def open(self) -> None:
        settings = self.camera.source
        if not isinstance(settings, models.FolderSource):
            raise TypeError(f"FolderSource needs a folder source config, got {settings.type!r}")
        self.settings = settings
        self.root = settings.path
        if not self.root.is_dir():
            raise CameraOpenError(
                f"camera '{self.camera.id}': folder {self.root} does not exist or is not a folder; "
                "check cameras[].source.path"
            )

        self._queue: deque[_FileStat] = deque()
        # Ids queued or read in this run; a file stays here so that it is never read twice.
        self._taken: set[str] = set()
        self._pending: dict[str, _Pending] = {}
        self._patterns = tuple(pattern.lower() for pattern in settings.patterns)

        files = self._list_files()
        self._initial = {stat.relative for stat in files}
        self._sent = _SentLog(self.state_dir / STATE_FILE)
        self._sent.load(keep={stat.frame_id for stat in files})
        logger.info(
            "folder camera opened camera=%s folder=%s files=%d already_sent=%d watch=%s state=%s",
            self.camera.id,
            self.root,
            len(files),
            len(self._sent),
            settings.watch,
            self._sent.path,
        )

    def read(self) -> CapturedFrame | None:
        while not self.stop.is_set():
            if self._queue:
                frame = self._read_file(self._queue.popleft())
                if frame is not None:
                    return frame
                continue

            self._scan()
            if self._queue:
                continue
            if not self.settings.watch and not self._pending:
                return None
            self.stop.wait(self.settings.poll_interval_ms / 1000)
        return None

    def mark_delivered(self, frame_id: str) -> None:
        self._sent.add(frame_id)

    def _scan(self) -> None:
        """Queue files whose size and modification time stayed the same for `settle_ms`."""
        now_s = time.monotonic()
        now_ns = time.time_ns()
        settle_s = self.settings.settle_ms / 1000
        ready: list[_FileStat] = []
        seen: set[str] = set()

        for stat in self._list_files():
            if not self.settings.watch and stat.relative not in self._initial:
                continue
            frame_id = stat.frame_id
            if frame_id in self._sent or frame_id in self._taken:
                continue
            seen.add(stat.relative)

            pending = self._pending.get(stat.relative)
            if pending is None or (pending.size_bytes, pending.mtime_ns) != (
                stat.size_bytes,
                stat.mtime_ns,
            ):
                pending = _Pending(stat.size_bytes, stat.mtime_ns, now_s)
                self._pending[stat.relative] = pending
            unchanged_s = max(now_s - pending.stable_since_s, (now_ns - stat.mtime_ns) / 1e9)
            if unchanged_s >= settle_s:
                ready.append(stat)

        self._pending = {name: value for name, value in self._pending.items() if name in seen}
        for stat in sorted(ready, key=lambda item: (item.mtime_ns, item.relative)):
            del self._pending[stat.relative]
            self._taken.add(stat.frame_id)
            self._queue.append(stat)

    def _list_files(self) -> list[_FileStat]:
        walker = self.root.rglob("*") if self.settings.recursive else self.root.iterdir()
        files = []
        for path in walker:
            if not any(
                fnmatch.fnmatchcase(path.name.lower(), pattern) for pattern in self._patterns
            ):
                continue
            try:
                status = path.stat()
            except FileNotFoundError:
                continue  # Removed between listing and stat.
            if not path.is_file():
                continue
            relative = path.relative_to(self.root).as_posix()
            files.append(_FileStat(relative, path, status.st_size, status.st_mtime_ns))
        return files

    def _read_file(self, stat: _FileStat) -> CapturedFrame | None:
        """Read and check one settled file; None when it vanished or changed since it settled."""
        try:
            payload = stat.path.read_bytes()
            after = stat.path.stat()
        except FileNotFoundError:
            logger.warning(
                "file removed before it was read camera=%s file=%s", self.camera.id, stat.relative
            )
            return None
        except OSError as exc:
            raise FrameRejectedError(
                f"cannot read file {stat.relative} in {self.root}: {exc.strerror}; "
                "check the file's permissions",
                b"",
                stat.relative,
                stat.frame_id,
            ) from exc
        if (after.st_size, after.st_mtime_ns) != (stat.size_bytes, stat.mtime_ns):
            logger.debug(
                "file changed while settling camera=%s file=%s", self.camera.id, stat.relative
            )
            return None  # The next scan finds the new version and waits for it to settle.

        encoding = detect_encoding(payload)
        size = decoded_size(payload) if encoding is not None else None
        if encoding is None or size is None:
            raise FrameRejectedError(
                _undecodable_reason(stat, payload, encoding is None),
                payload,
                stat.relative,
                stat.frame_id,
            )

        captured_at = datetime.fromtimestamp(stat.mtime_ns / 1e9, UTC)
        return CapturedFrame(
            payload,
            encoding,
            size[0],
            size[1],
            captured_at,
            frame_id=stat.frame_id,
            source=stat.relative,
        )


def _undecodable_reason(stat: _FileStat, payload: bytes, unknown_format: bool) -> str:
    if not payload:
        return f"file {stat.relative} is empty (0 bytes)"
    if unknown_format:
        return (
            f"file {stat.relative} ({len(payload)} bytes) is not a JPEG, PNG, BMP or TIFF image: "
            f"it starts with {payload[:8].hex()}"
        )
    return (
        f"file {stat.relative} ({len(payload)} bytes) could not be decoded by OpenCV; "
        "it is corrupt or truncated"
    )


class _SentLog:
    """Frame ids of files Kafka acknowledged, one per line, appended as acknowledgements arrive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, frame_id: object) -> bool:
        return frame_id in self._ids

    def load(self, keep: set[str]) -> None:
        """Load the ids and rewrite the file keeping only ids in `keep`, the files still present."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            stored = self.path.read_text(encoding="utf-8").splitlines()
            self._ids = {line for line in stored if line in keep}

        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(
            "".join(f"{frame_id}\n" for frame_id in sorted(self._ids)), encoding="utf-8"
        )
        os.replace(temporary, self.path)

    def add(self, frame_id: str) -> None:
        if frame_id in self._ids:
            return
        self._ids.add(frame_id)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(f"{frame_id}\n")
