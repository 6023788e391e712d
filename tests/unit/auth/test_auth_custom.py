"""Unit tests of the custom authenticator's decision cache (fake endpoint, fake clock)."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import HTTPConnection

from llama_entra.auth.custom import CustomAuthenticator, cache_seconds
from llama_entra.auth.rules import Rules
from llama_entra.config import CustomAuthConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _connection(path: str = "/v1/models", method: str = "GET") -> HTTPConnection:
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "method": method,
        "path": raw_path,
        "query_string": query.encode(),
        "headers": [(b"authorization", b"Bearer key-1")],
    }
    return HTTPConnection(scope)


def _authenticator(
    cache_control: str | None, clock: Clock
) -> tuple[CustomAuthenticator, list[int]]:
    calls: list[int] = []

    def decide(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        headers = {"Cache-Control": cache_control} if cache_control else {}
        return httpx.Response(200, json={"principal": "p"}, headers=headers)

    config = CustomAuthConfig(endpoint="http://auth.test/decide", cache_ttl_seconds=60)
    transport = httpx.MockTransport(decide)
    return CustomAuthenticator(config, Rules([]), transport=transport, clock=clock), calls


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 60),
        ("max-age=5", 5),
        ("public, max-age=600", 60),
        ("max-age=0", 0),
        ("no-store", 0),
        ("private, no-cache", 0),
        ("max-age=soon", 0),
        ("private", 60),
    ],
)
def test_custom_cache_seconds_honours_cache_control_under_the_ceiling(
    header: str | None, seconds: float
) -> None:
    assert cache_seconds(header, 60) == seconds


async def test_custom_cache_max_age_expires_the_allow() -> None:
    clock = Clock()
    authenticator, calls = _authenticator("max-age=5", clock)
    await authenticator.authenticate(_connection())
    clock.now += 4.9
    await authenticator.authenticate(_connection())
    assert len(calls) == 1
    clock.now += 0.2
    await authenticator.authenticate(_connection())
    assert len(calls) == 2
    await authenticator.aclose()


async def test_custom_cache_key_separates_method_path_and_query() -> None:
    authenticator, calls = _authenticator(None, Clock())
    for path, method in [
        ("/v1/models", "GET"),
        ("/v1/models", "GET"),
        ("/v1/models", "POST"),
        ("/v1/query", "GET"),
        ("/v1/models?a=1", "GET"),
        ("/v1/models?a=1&a=2", "GET"),
        ("/v1/models?a=1&a=2", "GET"),
    ]:
        await authenticator.authenticate(_connection(path, method))
    assert len(calls) == 5
    await authenticator.aclose()
