"""Unit tests of the proxy with an ``httpx.MockTransport`` upstream and a fake Entra ID."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from llama_entra.cli import main
from llama_entra.config import LlamaEntraConfig
from llama_entra.proxy import create_proxy_app, upstream_url
from support.entra import FakeClock, FakeEntra, fake_manager

UPSTREAM = "https://resource.openai.azure.com/openai/v1"


def _reply(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    """An upstream answer that is still a stream, as a real transport gives (not pre-read)."""
    content = json.dumps(body).encode()
    return httpx.Response(
        status,
        headers={"content-type": "application/json", **(headers or {})},
        stream=httpx.ByteStream(content),
    )


def _client(handler: httpx.MockTransport, entra: FakeEntra, **proxy: object) -> TestClient:
    config = LlamaEntraConfig.model_validate({"proxy": {"upstream": UPSTREAM, **proxy}})
    app = create_proxy_app(config, transport=handler, tokens=fake_manager(entra))
    return TestClient(app)


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/chat/completions", b"", f"{UPSTREAM}/chat/completions"),
        ("/models", b"a=1", f"{UPSTREAM}/models?a=1"),
        (
            "/openai/deployments/gpt/chat/completions",
            b"api-version=2024-10-21",
            "https://resource.openai.azure.com/openai/deployments/gpt/chat/completions"
            "?api-version=2024-10-21",
        ),
    ],
)
def test_upstream_url_maps_relative_and_azure_paths(path: str, query: bytes, expected: str) -> None:
    assert str(upstream_url(httpx.URL(UPSTREAM), path, query)) == expected


def test_proxy_strips_caller_credentials_and_hop_by_hop_headers() -> None:
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _reply(200, {"ok": True}, {"Keep-Alive": "timeout=5"})

    entra = FakeEntra(clock=FakeClock())
    with _client(httpx.MockTransport(upstream), entra) as client:
        response = client.post(
            "/chat/completions",
            json={"x": 1},
            headers={
                "api-key": "caller",
                "Authorization": "Bearer caller",
                "Connection": "X-Private",
                "X-Private": "drop me",
                "X-Kept": "keep me",
            },
        )
    assert response.status_code == 200
    assert "keep-alive" not in response.headers
    sent = seen[0].headers
    assert sent["authorization"] == "Bearer token-1"
    assert "api-key" not in sent and "x-private" not in sent
    assert sent["x-kept"] == "keep me"


def test_proxy_401_retries_replayable_body_once_with_new_token() -> None:
    tokens: list[str] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers["authorization"])
        assert request.content == b'{"q":1}'
        return _reply(401 if len(tokens) == 1 else 200, {})

    entra = FakeEntra(clock=FakeClock())
    with _client(httpx.MockTransport(upstream), entra) as client:
        response = client.post("/chat/completions", content=b'{"q":1}')
    assert response.status_code == 200
    assert tokens == ["Bearer token-1", "Bearer token-2"]


def test_proxy_401_on_body_above_replay_limit_is_passed_back() -> None:
    calls = 0

    def upstream(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _reply(401, {"error": "expired"})

    entra = FakeEntra(clock=FakeClock())
    transport = httpx.MockTransport(upstream)
    with _client(transport, entra, replay_limit_bytes=4) as client:
        response = client.post("/chat/completions", content=b"0123456789")
    assert (response.status_code, calls) == (401, 1)


def test_proxy_unreachable_upstream_is_502_json() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    entra = FakeEntra(clock=FakeClock())
    with _client(httpx.MockTransport(upstream), entra) as client:
        response = client.get("/models")
    assert response.status_code == 502
    assert response.json()["detail"]["response"] == "Azure OpenAI unreachable"


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
