"""Frame archive: evidence images stored in a local directory or an S3-compatible bucket."""

from defectline.connectors.archive.base import FrameArchive, create_archive, evidence_key
from defectline.connectors.archive.errors import ArchiveError, ArchiveUnavailableError

__all__ = [
    "ArchiveError",
    "ArchiveUnavailableError",
    "FrameArchive",
    "create_archive",
    "evidence_key",
]
