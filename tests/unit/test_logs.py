"""Unit tests of the log set-up: request ids on every record, one JSON object per line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from llama_entra.logs import JsonFormatter, RequestIdFilter, bind_request_id


@pytest.fixture
def json_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("llama_entra.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def _entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_log_lines_carry_the_bound_request_id_and_extras(
    json_lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_lines
    with bind_request_id("req-1"):
        logger.info("inside", extra={"status": 200})
    logger.info("outside")
    inside, outside = _entries(stream)
    assert (inside["message"], inside["request_id"], inside["status"]) == ("inside", "req-1", 200)
    assert inside["level"] == "info" and inside["logger"] == "llama_entra.test_logs"
    assert outside["request_id"] == "-"


def test_request_ids_of_concurrent_requests_do_not_mix(
    json_lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_lines

    async def handle(request_id: str) -> None:
        with bind_request_id(request_id):
            for step in range(3):
                await asyncio.sleep(0)  # interleave with the other request
                logger.info("%s step %d", request_id, step)

    async def both() -> None:
        await asyncio.gather(handle("a"), handle("b"))

    asyncio.run(both())
    entries = _entries(stream)
    assert len(entries) == 6
    assert all(str(entry["message"]).startswith(str(entry["request_id"])) for entry in entries)
