"""Frame messages: the encoded image is the Kafka value and `FrameMeta` travels in the headers.

Keeping the image bytes as the raw value lets any consumer decode it without a wrapper, and the
headers stay readable by Kafka tools. The message key is the camera id, so one camera's frames
stay in one partition and in capture order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import Field, ValidationError, field_serializer

from defectline.schemas.base import Message, UtcDatetime, to_utc_iso
from defectline.schemas.errors import FrameHeaderError

SCHEMA = "frame.v1"
SCHEMA_HEADER = "schema"

Encoding = Literal["jpeg", "png", "bmp", "tiff"]

# Leading bytes of each encoding, used to tell a wrong header from a corrupt image.
MAGIC_BYTES: dict[str, tuple[bytes, ...]] = {
    "jpeg": (b"\xff\xd8\xff",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "bmp": (b"BM",),
    "tiff": (b"II*\x00", b"MM\x00*"),
}

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


class FrameMeta(Message):
    """Metadata of one captured frame, as the camera connector records it."""

    camera_id: str = Field(..., pattern=ID_PATTERN)
    station_id: str = Field(..., pattern=ID_PATTERN)
    frame_id: str = Field(
        ...,
        min_length=1,
        max_length=256,
        description="Unique per camera; with camera_id the idempotency key",
    )
    sequence: int = Field(..., ge=0, description="Per-camera counter in capture order")
    captured_at: UtcDatetime
    encoding: Encoding
    width_px: int = Field(..., ge=1, le=65535)
    height_px: int = Field(..., ge=1, le=65535)
    part_id: str | None = Field(None, max_length=256)
    source: str | None = Field(
        None, max_length=1024, description="File name or camera URI, no credentials"
    )

    @field_serializer("captured_at")
    def _serialize_time(self, value: datetime) -> str:
        return to_utc_iso(value)

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Encode as Kafka headers: UTF-8 text values, absent optional fields left out."""
        headers = [(SCHEMA_HEADER, SCHEMA.encode())]
        for name, value in self.model_dump(mode="json").items():
            if value is not None:
                headers.append((name, str(value).encode()))
        return headers

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]] | None) -> FrameMeta:
        """Decode Kafka headers, raising `FrameHeaderError` that names the bad header."""
        values: dict[str, str] = {}
        for key, raw in headers or ():
            if raw is None:
                continue
            try:
                values[key] = raw.decode() if isinstance(raw, bytes) else str(raw)
            except UnicodeDecodeError as exc:
                raise FrameHeaderError(f"frame header '{key}' is not valid UTF-8") from exc

        schema = values.pop(SCHEMA_HEADER, None)
        if schema != SCHEMA:
            raise FrameHeaderError(
                f"frame header '{SCHEMA_HEADER}' is {schema!r}, expected {SCHEMA!r}; "
                "the producer is not a defectline camera connector or uses another contract version"
            )
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise FrameHeaderError(f"invalid frame headers: {problems}") from exc

    def check_payload(self, payload: bytes) -> None:
        """Raise `FrameHeaderError` when the payload is empty or does not start like `encoding`."""
        if not payload:
            raise FrameHeaderError(f"frame {self.camera_id}/{self.frame_id} has an empty payload")
        if not payload.startswith(MAGIC_BYTES[self.encoding]):
            raise FrameHeaderError(
                f"frame {self.camera_id}/{self.frame_id}: header gives encoding "
                f"'{self.encoding}' but the payload does not start with its signature"
            )
