"""Image content parts of a chat request, checked and described as Azure OpenAI treats them.

A user message's ``content`` may be a list of parts; an ``image_url`` part carries either an
``https://`` URL (Azure fetches it; the emulator, offline, accepts it unread) or a
``data:image/<png|jpeg|gif|webp>;base64,...`` URL. Azure answers 400 ``BadRequest``
"Invalid image data." for a data URL whose bytes are not base64 or not an image of a
supported format; so does the emulator. Deterministic replies describe each image
(``[image: image/png, 67 bytes]``) so a test can see which images reached the model.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

__all__ = ["describe_image", "image_problem"]

_DATA_PREFIX = "data:"
_FORMATS = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _sniff(data: bytes) -> str | None:
    """The image format of ``data`` by its first bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _decoded(url: str) -> tuple[str, bytes] | None:
    """A data URL's image format and bytes, or None when it is not a supported image."""
    header, _, payload = url.removeprefix(_DATA_PREFIX).partition(",")
    declared, _, encoding = header.partition(";")
    if encoding != "base64" or declared not in _FORMATS:
        return None
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    sniffed = _sniff(data)
    return (sniffed, data) if sniffed is not None else None


def _image_urls(messages: list[Any]) -> list[str]:
    urls: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                urls.append(url if isinstance(url, str) else "")
    return urls


def image_problem(messages: list[Any]) -> str | None:
    """Azure's message for the first unusable image part of ``messages``, or None."""
    for url in _image_urls(messages):
        if url.startswith(("https://", "http://")):
            continue
        if not url.startswith(_DATA_PREFIX) or _decoded(url) is None:
            return "Invalid image data."
    return None


def describe_image(part: dict[str, Any]) -> str:
    """``[image: FORMAT, N bytes]`` for a usable data URL part, ``[image: URL]`` for a link."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        return "[image]"
    found = _decoded(url) if url.startswith(_DATA_PREFIX) else None
    if found is None:
        return f"[image: {url[:100]}]"
    return f"[image: {found[0]}, {len(found[1])} bytes]"
