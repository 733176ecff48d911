"""Image bytes for camera sources: encoding arrays, recognising formats and reading image sizes."""

from __future__ import annotations

import cv2
import numpy as np

from defectline.schemas.frames import MAGIC_BYTES, Encoding

_EXTENSIONS: dict[str, str] = {"jpeg": ".jpg", "png": ".png", "bmp": ".bmp", "tiff": ".tiff"}


def encode_image(image: np.ndarray, encoding: Encoding, jpeg_quality: int = 92) -> bytes:
    """Encode a BGR (or grey) uint8 array; `jpeg_quality` (1-100) applies to JPEG only."""
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if encoding == "jpeg" else []
    ok, buffer = cv2.imencode(_EXTENSIONS[encoding], image, params)
    if not ok:
        raise ValueError(
            f"OpenCV could not encode a {image.shape} {image.dtype} image as {encoding}"
        )
    return buffer.tobytes()


def detect_encoding(payload: bytes) -> Encoding | None:
    """Return the encoding whose signature starts `payload`, or None when none matches."""
    for encoding, signatures in MAGIC_BYTES.items():
        if payload.startswith(signatures):
            return encoding  # type: ignore[return-value]
    return None


def decoded_size(payload: bytes) -> tuple[int, int] | None:
    """Decode `payload` as stored (IMREAD_UNCHANGED); return (width_px, height_px) or None."""
    if not payload:
        return None
    image = cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    return int(image.shape[1]), int(image.shape[0])
