"""Errors of the frame archive."""

from defectline.errors import DefectlineError


class ArchiveError(DefectlineError):
    """An image could not be stored in or read from the frame archive."""


class ArchiveUnavailableError(ArchiveError):
    """The configured archive cannot be used: a missing optional package or a bad location."""
