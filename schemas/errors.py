"""Errors raised when a message does not match its contract."""

from defectline.errors import DefectlineError


class SchemaError(DefectlineError):
    """A message is missing fields, has mistyped ones, or carries an unsupported schema version."""


class FrameHeaderError(SchemaError):
    """The Kafka headers of a frame message do not describe a valid frame."""
