"""Image attachments of ``/v1/query``: which formats, how large, and how they are checked.

The checks and their messages are lightspeed-stack's (``models/common/query.py``): the content
must be base64 (``Invalid base64 content for image attachment: ...``), no larger than the limit
once decoded, and its first bytes must be an image of the declared type (``... invalid image
data``). lightspeed-stack accepts PNG and JPEG; Azure OpenAI also takes GIF and WebP, and so
does llama-entra.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["IMAGE_CONTENT_TYPES", "MAX_IMAGE_BYTES", "base64_length", "check_image"]

IMAGE_CONTENT_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # decoded; a request is also bounded by service.max_body_bytes


def base64_length(size: int) -> int:
    """Characters of ``size`` bytes in padded base64."""
    return 4 * ((size + 2) // 3)


def _matches(data: bytes, content_type: str) -> bool:
    """Whether ``data`` starts like an image of ``content_type``."""
    if content_type == "image/png":
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    if content_type == "image/jpeg":
        return data.startswith(b"\xff\xd8\xff")
    if content_type == "image/gif":
        return data.startswith((b"GIF87a", b"GIF89a"))
    if content_type == "image/webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return False


def check_image(content: str, content_type: str) -> None:
    """Raise ``ValueError`` (lightspeed's message) unless ``content`` is a base64 image."""
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"Invalid base64 content for image attachment: {exc}") from exc
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(
            f"Image attachment ({len(data)} bytes) exceeds maximum allowed size "
            f"({MAX_IMAGE_BYTES} bytes)"
        )
    if not _matches(data, content_type):
        raise ValueError(
            f"Image content does not match declared content_type '{content_type}': "
            "invalid image data"
        )
