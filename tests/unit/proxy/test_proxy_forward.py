"""Unit tests of the proxy with a fake Entra ID and a fake upstream served on loopback.

The upstream is a small ASGI app under real uvicorn (plain HTTP), so the proxy's real
aiohttp session talks to it; each test decides the answers and reads what arrived.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yarl
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from llama_entra.cli import main
from llama_entra.config import LlamaEntraConfig
from llama_entra.proxy import create_proxy_app, upstream_url
from support.entra import FakeClock, FakeEntra, fake_manager
from support.servers import run_uvicorn
from support.service import free_port

UPSTREAM = "https://resource.openai.azure.com/openai/v1"


@dataclass
class Arrived:
    """One request as the upstream saw it."""

    raw_path: bytes
    query: bytes
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeUpstream:
    """Answers with ``answer(arrived, index)`` and keeps every request."""

    answer: Callable[[Arrived, int], Response]
    arrived: list[Arrived] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        seen = Arrived(
            scope["raw_path"], scope["query_string"], dict(request.headers), await request.body()
        )
        self.arrived.append(seen)
        await self.answer(seen, len(self.arrived))(scope, receive, send)


def _ok(arrived: Arrived, index: int) -> Response:
    return JSONResponse({"ok": True})


@contextmanager
def _proxy(
    answer: Callable[[Arrived, int], Response] = _ok, base: str = "/openai/v1", **proxy: object
) -> Iterator[tuple[TestClient, FakeUpstream]]:
    upstream = FakeUpstream(answer)
    with run_uvicorn(upstream) as url:
        config = LlamaEntraConfig.model_validate({"proxy": {"upstream": url + base, **proxy}})
        app = create_proxy_app(config, tokens=fake_manager(FakeEntra(clock=FakeClock())))
        with TestClient(app) as client:
            yield client, upstream


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        (b"/chat/completions", b"", f"{UPSTREAM}/chat/completions"),
        (b"/models", b"a=1", f"{UPSTREAM}/models?a=1"),
        (
            b"/openai/deployments/gpt/chat/completions",
            b"api-version=2024-10-21",
            "https://resource.openai.azure.com/openai/deployments/gpt/chat/completions"
            "?api-version=2024-10-21",
        ),
        (b"/files/a%2Fb%20c", b"q=%2F", f"{UPSTREAM}/files/a%2Fb%20c?q=%2F"),
    ],
)
def test_upstream_url_maps_relative_and_azure_paths_byte_for_byte(
    path: bytes, query: bytes, expected: str
) -> None:
    assert str(upstream_url(yarl.URL(UPSTREAM), path, query)) == expected


def test_upstream_url_rejects_a_path_that_is_not_ascii() -> None:
    with pytest.raises(UnicodeDecodeError):
        upstream_url(yarl.URL(UPSTREAM), "/caf\u00e9".encode(), b"")


def test_proxy_strips_caller_credentials_and_hop_by_hop_headers() -> None:
    def answer(arrived: Arrived, index: int) -> Response:
        return JSONResponse({"ok": True}, headers={"Keep-Alive": "timeout=5", "X-Up": "1"})

    with _proxy(answer) as (client, upstream):
        response = client.post(
            "/chat/completions",
            json={"x": 1},
            headers={
                "api-key": "caller",
                "Authorization": "Bearer caller",
                "Connection": "X-Private",
                "X-Private": "drop me",
                "Expect": "100-continue",
                "X-Kept": "keep me",
            },
        )
    assert response.status_code == 200
    assert "keep-alive" not in response.headers
    assert response.headers["x-up"] == "1"
    sent = upstream.arrived[0]
    assert sent.raw_path == b"/openai/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer token-1"
    assert "api-key" not in sent.headers and "x-private" not in sent.headers
    assert "expect" not in sent.headers
    assert sent.headers["x-kept"] == "keep me"
    assert sent.body == b'{"x":1}'


def test_proxy_adds_no_headers_and_keeps_no_cookies_of_its_own() -> None:
    def answer(arrived: Arrived, index: int) -> Response:
        response = JSONResponse({"ok": True})
        response.set_cookie("session", "for-the-first-caller-only")
        return response

    with _proxy(answer) as (client, upstream):
        del client.headers["accept-encoding"]
        del client.headers["user-agent"]
        client.post("/chat/completions", content=b"{}")
        client.cookies.clear()
        client.post("/chat/completions", content=b"{}")
    for arrived in upstream.arrived:
        assert "accept-encoding" not in arrived.headers  # else gzip for a caller who never asked
        assert "user-agent" not in arrived.headers
        assert "content-type" not in arrived.headers
        assert "cookie" not in arrived.headers


def test_proxy_passes_an_encoded_path_and_query_unchanged() -> None:
    with _proxy(base="/openai/v1") as (client, upstream):
        client.get("/openai/deployments/a%2Fb/models?api-version=2024&x=%2F")
    assert upstream.arrived[0].raw_path == b"/openai/deployments/a%2Fb/models"
    assert upstream.arrived[0].query == b"api-version=2024&x=%2F"


def test_proxy_401_retries_replayable_body_once_with_new_token() -> None:
    def answer(arrived: Arrived, index: int) -> Response:
        return JSONResponse({}, status_code=401 if index == 1 else 200)

    with _proxy(answer) as (client, upstream):
        response = client.post("/chat/completions", content=b'{"q":1}')
    assert response.status_code == 200
    assert [a.headers["authorization"] for a in upstream.arrived] == [
        "Bearer token-1",
        "Bearer token-2",
    ]
    assert [a.body for a in upstream.arrived] == [b'{"q":1}', b'{"q":1}']


def test_proxy_401_on_body_above_replay_limit_is_passed_back() -> None:
    def answer(arrived: Arrived, index: int) -> Response:
        return JSONResponse({"error": "expired"}, status_code=401)

    with _proxy(answer, replay_limit_bytes=4) as (client, upstream):
        response = client.post("/chat/completions", content=b"0123456789")
    assert (response.status_code, len(upstream.arrived)) == (401, 1)
    assert upstream.arrived[0].body == b"0123456789"


def test_proxy_unreachable_upstream_is_502_json() -> None:
    config = LlamaEntraConfig.model_validate(
        {"proxy": {"upstream": f"http://127.0.0.1:{free_port()}/openai/v1"}}
    )
    app = create_proxy_app(config, tokens=fake_manager(FakeEntra(clock=FakeClock())))
    with TestClient(app) as client:
        response = client.get("/models")
    assert response.status_code == 502
    assert response.json()["detail"]["response"] == "Azure OpenAI unreachable"


def test_proxy_refuses_methods_it_does_not_forward() -> None:
    with _proxy() as (client, upstream):
        response = client.request("TRACE", "/models")
    assert response.status_code == 405
    assert "TRACE" in response.json()["detail"]["cause"]
    assert upstream.arrived == []


def test_proxy_cli_without_upstream_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "llama-entra.yaml"
    config.write_text("azure_entra_id: {tenant_id: t, client_id: c, client_secret: s}\n")
    assert main(["proxy", "-c", str(config)]) == 2
    assert "proxy.upstream" in capsys.readouterr().err


def test_proxy_cli_rejects_non_http_upstream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "llama-entra.yaml"
    config.write_text("azure_entra_id: {tenant_id: t, client_id: c, client_secret: s}\n")
    assert main(["proxy", "-c", str(config), "--upstream", "ftp://x"]) == 2
    assert "http(s) URL" in capsys.readouterr().err
