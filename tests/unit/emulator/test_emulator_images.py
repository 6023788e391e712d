"""Unit tests: the emulator takes image content parts as Azure OpenAI does."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from llama_entra.emulator.images import describe_image, image_problem

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def _message(url: str) -> list[dict[str, Any]]:
    parts = [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return [{"role": "user", "content": parts}]


def _data_url(data: bytes, content_type: str = "image/png") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize(
    "url",
    [_data_url(PNG), "https://example.com/cat.png", _data_url(b"GIF89a\x01\x00", "image/gif")],
)
def test_usable_images_pass(url: str) -> None:
    assert image_problem(_message(url)) is None


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,not-base64!!",
        _data_url(b"plain text, not an image"),
        _data_url(PNG, "image/tiff"),
        "data:image/png,rawbytes",
        "ftp://example.com/cat.png",
    ],
)
def test_unusable_images_are_azures_invalid_image_data(url: str) -> None:
    assert image_problem(_message(url)) == "Invalid image data."


def test_text_only_messages_have_no_image_problem() -> None:
    assert image_problem([{"role": "user", "content": "hello"}]) is None


def test_a_described_image_names_its_format_and_size() -> None:
    part = {"type": "image_url", "image_url": {"url": _data_url(PNG)}}
    assert describe_image(part) == f"[image: image/png, {len(PNG)} bytes]"
