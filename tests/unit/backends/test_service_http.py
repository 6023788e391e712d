"""Service mode's client to a Llama Stack server carries many requests at once.

A local server holds every request open until ``OPEN`` of them have arrived on their own
connections: with the generated clients' default limits (100 connections for
llama-stack-client, five per CPU for OGX's) the rest would wait for a free connection and the
server would never see ``OPEN``. The pooled transport spreads requests over its pools, so its
capacity is every pool's connections together, and the environment's proxy applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from llama_entra.backends import active_backend
from llama_entra.backends.service_http import PooledTransport, environment_proxy

OPEN = 150


def _http_client(raw: Any) -> httpx.AsyncClient:
    """The httpx client under the backend's service client."""
    api_client = getattr(raw, "api_client", None)  # OGX's generated client
    client = api_client.async_client if api_client is not None else raw._client
    assert isinstance(client, httpx.AsyncClient)
    return client


async def test_the_service_client_keeps_150_requests_open_at_once() -> None:
    everyone, seen = asyncio.Event(), []
    async with _holding_server(everyone, seen, everyone, OPEN) as url:
        adapter = active_backend().open_service(url, None, 30.0)
        client = _http_client(adapter.raw)
        try:
            calls = [client.get(f"{url}/v1/health") for _ in range(OPEN)]
            answers = await asyncio.wait_for(asyncio.gather(*calls), timeout=20)
        finally:
            await client.aclose()
    assert len(seen) == OPEN
    assert {a.text for a in answers} == {"ok"}


@asynccontextmanager
async def _holding_server(
    release: asyncio.Event, seen: list[int], full: asyncio.Event, size: int
) -> AsyncIterator[str]:
    """A server that counts requests as they arrive (``full`` once ``size`` of them have) and
    answers them once ``release`` is set."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        seen.append(1)
        if len(seen) == size:
            full.set()
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def test_pooled_transport_spreads_requests_over_its_pools() -> None:
    """Four pools of two: eight requests open at once, the ninth waits for a free connection."""
    release, full, seen = asyncio.Event(), asyncio.Event(), []
    async with _holding_server(release, seen, full, 8) as url:
        client = httpx.AsyncClient(transport=PooledTransport(pools=4, connections=2))
        calls = [asyncio.create_task(client.get(f"{url}/v1/health")) for _ in range(9)]
        try:
            await asyncio.wait_for(full.wait(), timeout=10)
            await asyncio.sleep(0.2)  # the ninth has had time to arrive, were it not queued
            assert len(seen) == 8
            release.set()
            answers = await asyncio.wait_for(asyncio.gather(*calls), timeout=10)
        finally:
            await client.aclose()
    assert len(seen) == 9
    assert [a.text for a in answers] == ["ok"] * 9


async def test_pooled_transport_reuses_connections_between_calls() -> None:
    opened: list[int] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened.append(1)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = httpx.AsyncClient(transport=PooledTransport(pools=2, connections=4))
    try:
        for _ in range(6):
            assert (await client.get(f"{url}/v1/health")).text == "ok"
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()
    assert len(opened) == 2  # one kept-alive connection per pool, the calls taking turns


def test_environment_proxy_applies_unless_no_proxy_names_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert environment_proxy("http://llama-stack:8321") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert environment_proxy("http://llama-stack:8321") == "http://proxy.example:3128"
    monkeypatch.setenv("NO_PROXY", "llama-stack,localhost")
    assert environment_proxy("http://llama-stack:8321") is None
    assert environment_proxy("http://other:8321") == "http://proxy.example:3128"


def test_the_service_client_sends_through_the_pooled_transport() -> None:
    adapter = active_backend().open_service("http://127.0.0.1:8321", None, 30.0)
    transport = _http_client(adapter.raw)._transport
    assert isinstance(transport, PooledTransport)
    assert len(transport.pools) > 1


def test_idle_connections_are_dropped_before_a_uvicorn_server_closes_them() -> None:
    import uvicorn

    from llama_entra.backends.service_http import KEEPALIVE_SECONDS

    pool = PooledTransport().pools[0]._pool
    assert pool._keepalive_expiry == KEEPALIVE_SECONDS < uvicorn.Config(app=None).timeout_keep_alive
