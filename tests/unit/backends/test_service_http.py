"""Service mode's client to a Llama Stack server carries many requests at once.

A local server holds every request open until ``OPEN`` of them have arrived on their own
connections: with the generated clients' default limits (100 connections for
llama-stack-client, five per CPU for OGX's) the rest would wait for a free connection and the
server would never see ``OPEN``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from llama_entra.backends import active_backend

OPEN = 150


def _http_client(raw: Any) -> httpx.AsyncClient:
    """The httpx client under the backend's service client."""
    api_client = getattr(raw, "api_client", None)  # OGX's generated client
    client = api_client.async_client if api_client is not None else raw._client
    assert isinstance(client, httpx.AsyncClient)
    return client


async def test_the_service_client_keeps_150_requests_open_at_once() -> None:
    arrived = 0
    everyone = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        await reader.readuntil(b"\r\n\r\n")
        arrived += 1
        if arrived == OPEN:
            everyone.set()
        await everyone.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    adapter = active_backend().open_service(f"http://127.0.0.1:{port}", None, 30.0)
    client = _http_client(adapter.raw)
    try:
        calls = [client.get(f"http://127.0.0.1:{port}/v1/health") for _ in range(OPEN)]
        answers = await asyncio.wait_for(asyncio.gather(*calls), timeout=20)
    finally:
        await client.aclose()
        server.close()
    assert arrived == OPEN
    assert {a.text for a in answers} == {"ok"}
