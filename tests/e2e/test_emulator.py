"""End-to-end: the emulator with real azure-identity credentials and real OpenAI clients.

Everything goes over HTTPS to a real emulator process, trusting only its ``ca.pem``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import jwt
import openai
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.identity.aio import CertificateCredential as AsyncCertificateCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential

from support.emulator import EmulatorHandle

SCOPE = "https://cognitiveservices.azure.com/.default"


def _kwargs(emulator: EmulatorHandle) -> dict[str, Any]:
    return {"authority": emulator.url, "connection_verify": str(emulator.ca_path)}


def _openai(emulator: EmulatorHandle, token: str) -> openai.OpenAI:
    http = httpx.Client(verify=str(emulator.ca_path))
    return openai.OpenAI(
        base_url=emulator.azure_base_url, api_key=token, http_client=http, max_retries=0
    )


def _token(emulator: EmulatorHandle) -> str:
    with ClientSecretCredential(
        emulator.tenant_id,
        emulator.client_id,
        emulator.client_secret,
        disable_instance_discovery=True,
        **_kwargs(emulator),
    ) as credential:
        return credential.get_token(SCOPE).token


def _chat(client: openai.OpenAI, emulator: EmulatorHandle, text: str) -> str:
    reply = client.chat.completions.create(
        model=emulator.model, messages=[{"role": "user", "content": text}]
    )
    return reply.choices[0].message.content or ""


def test_sync_and_async_secret_and_certificate_credentials_get_tokens(
    fresh_emulator: EmulatorHandle,
) -> None:
    emulator = fresh_emulator
    assert _token(emulator).startswith("ey")
    with CertificateCredential(
        emulator.tenant_id,
        emulator.cert_client_id,
        str(emulator.cert_path),
        disable_instance_discovery=True,
        send_certificate_chain=True,
        **_kwargs(emulator),
    ) as certificate:
        assert certificate.get_token(SCOPE).token.startswith("ey")

    async def both_async() -> list[str]:
        async with (
            AsyncClientSecretCredential(
                emulator.tenant_id, emulator.client_id, emulator.client_secret, **_kwargs(emulator)
            ) as secret,
            AsyncCertificateCredential(
                emulator.tenant_id,
                emulator.cert_client_id,
                str(emulator.cert_path),
                **_kwargs(emulator),
            ) as cert,
        ):
            return [(await c.get_token(SCOPE)).token for c in (secret, cert)]

    assert all(token.startswith("ey") for token in asyncio.run(both_async()))
    by_client = emulator.counters()["token_requests_by_client"]
    assert by_client == {emulator.client_id: 2, emulator.cert_client_id: 2}


@pytest.mark.parametrize(
    ("client_id", "secret", "code"),
    [(None, "wrong-secret", "AADSTS7000215"), ("unknown-app", "x", "AADSTS700016")],
)
def test_bad_client_raises_client_authentication_error_with_aadsts(
    emulator: EmulatorHandle, client_id: str | None, secret: str, code: str
) -> None:
    with (
        ClientSecretCredential(
            emulator.tenant_id,
            client_id or emulator.client_id,
            secret,
            disable_instance_discovery=True,
            **_kwargs(emulator),
        ) as credential,
        pytest.raises(ClientAuthenticationError, match=code),
    ):
        credential.get_token(SCOPE)


def test_openai_sdk_with_token_without_and_after_revocation(
    fresh_emulator: EmulatorHandle,
) -> None:
    token = _token(fresh_emulator)
    with _openai(fresh_emulator, token) as client:
        assert _chat(client, fresh_emulator, "hi there") == "You said: hi there"
    with (
        _openai(fresh_emulator, "not-a-token") as client,
        pytest.raises(openai.AuthenticationError),
    ):
        _chat(client, fresh_emulator, "x")
    fresh_emulator.revoke_all_tokens()
    with _openai(fresh_emulator, token) as client, pytest.raises(openai.AuthenticationError):
        _chat(client, fresh_emulator, "x")
    assert fresh_emulator.counters()["unauthorized"] == 2
    # The static key works as Bearer (what llama-stack sends) and as api-key.
    with _openai(fresh_emulator, fresh_emulator.static_api_key) as client:
        assert _chat(client, fresh_emulator, "k")
    response = httpx.get(
        f"{fresh_emulator.azure_base_url}/models",
        headers={"api-key": fresh_emulator.static_api_key},
        verify=str(fresh_emulator.ca_path),
    )
    assert response.status_code == 200


def test_expired_token_is_rejected(fresh_emulator: EmulatorHandle) -> None:
    fresh_emulator.set_token_lifetime(1)
    token = _token(fresh_emulator)
    time.sleep(1.2)
    with _openai(fresh_emulator, token) as client, pytest.raises(openai.AuthenticationError):
        _chat(client, fresh_emulator, "late")


def test_streaming_yields_chunks_one_by_one_with_usage(fresh_emulator: EmulatorHandle) -> None:
    fresh_emulator.set_stream_delay(0.15)
    arrivals, parts, usage = [], [], None
    with _openai(fresh_emulator, _token(fresh_emulator)) as client:
        stream = client.chat.completions.create(
            model=fresh_emulator.model,
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
                arrivals.append(time.monotonic())
            usage = chunk.usage or usage
    assert "".join(parts) == "You said: one two three"
    assert arrivals[-1] - arrivals[0] > 0.5  # spread out, not delivered at once
    assert usage is not None and usage.completion_tokens == 5


def test_classic_deployment_route_with_azure_client(fresh_emulator: EmulatorHandle) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=fresh_emulator.url,
        azure_ad_token=_token(fresh_emulator),
        api_version="2024-10-21",
        http_client=httpx.Client(verify=str(fresh_emulator.ca_path)),
        max_retries=0,
    ) as client:
        assert _chat(client, fresh_emulator, "classic") == "You said: classic"


def test_gzip_and_injected_status(fresh_emulator: EmulatorHandle) -> None:
    headers = {"Authorization": f"Bearer {_token(fresh_emulator)}", "Accept-Encoding": "gzip"}
    with httpx.stream(
        "GET",
        f"{fresh_emulator.azure_base_url}/models",
        headers=headers,
        verify=str(fresh_emulator.ca_path),
    ) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw))["data"][0]["id"] == fresh_emulator.model
    limited = httpx.post(
        f"{fresh_emulator.azure_base_url}/chat/completions",
        json={
            "model": fresh_emulator.model,
            "messages": [{"role": "user", "content": "!status 429"}],
        },
        headers={"Authorization": headers["Authorization"]},
        verify=str(fresh_emulator.ca_path),
    )
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "1")


def test_token_faults_and_refresh_in(fresh_emulator: EmulatorHandle) -> None:
    url = f"{fresh_emulator.url}/{fresh_emulator.tenant_id}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": fresh_emulator.client_id,
        "client_secret": fresh_emulator.client_secret,
        "scope": SCOPE,
    }

    def ask() -> httpx.Response:
        return httpx.post(url, data=form, verify=str(fresh_emulator.ca_path), timeout=10)

    fresh_emulator.fail_next_token_requests(1, status=500)
    assert ask().status_code == 500
    fresh_emulator.set_entra_down(True)
    assert ask().json()["error"] == "temporarily_unavailable"
    fresh_emulator.set_entra_down(False)
    fresh_emulator.delay_next_token_requests(1, 0.5)
    started = time.monotonic()
    assert ask().status_code == 200
    assert time.monotonic() - started >= 0.5
    fresh_emulator.set_token_lifetime(600, refresh_in=300)
    body = ask().json()
    assert (body["expires_in"], body["refresh_in"]) == (600, 300)
    fresh_emulator.reset()
    assert "refresh_in" not in ask().json()
    assert fresh_emulator.counters()["token_requests"] == 1


def test_jwks_verifies_issued_access_tokens(emulator: EmulatorHandle) -> None:
    token = _token(emulator)
    keys = httpx.get(
        f"{emulator.url}/{emulator.tenant_id}/discovery/v2.0/keys", verify=str(emulator.ca_path)
    ).json()
    key = jwt.PyJWKSet.from_dict(keys).keys[0]
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience="https://cognitiveservices.azure.com"
    )
    assert claims["appid"] == emulator.client_id
    assert claims["tid"] == emulator.tenant_id


_LIBRARY_CLIENT_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from llama_entra.backends import active_backend

run_config, model, token, api_base = sys.argv[1:5]

async def ask():
    backend = active_backend()
    client = await backend.open_library(Path(run_config))
    params = {"model": model, "messages": [{"role": "user", "content": "through llama stack"}]}
    data = json.dumps({"azure_api_key": token, "azure_api_base": api_base})
    reply = await client.chat_completion(params, {backend.provider_data_header: data})
    try:
        await client.chat_completion(params, {})
        failure = None
    except Exception as exc:  # without provider data there is no key
        failure = type(exc).__name__
    print(json.dumps({"text": reply["choices"][0]["message"]["content"], "failure": failure}))

asyncio.run(ask())
"""


@pytest.mark.slow
def test_library_client_answers_with_token_in_the_backends_provider_data_header(
    emulator: EmulatorHandle, tmp_path: Any
) -> None:
    # In a subprocess: llama-stack's library client leaves sockets for the interpreter to close.
    from llama_entra.enrich import (
        enrich_run_config,
        ensure_tiktoken_cache,
        load_run_config,
        write_enriched,
    )
    from support.service import ROOT, stack_environment

    env = stack_environment(emulator, tmp_path)
    ensure_tiktoken_cache(env["TIKTOKEN_CACHE_DIR"])
    enriched, _ = enrich_run_config(load_run_config(ROOT / "run-configs/azure.yaml"), entra=True)
    write_enriched(enriched, tmp_path / "run.yaml")
    args = [str(tmp_path / "run.yaml"), f"azure/{emulator.model}", _token(emulator)]
    completed = subprocess.run(
        [sys.executable, "-c", _LIBRARY_CLIENT_SCRIPT, *args, emulator.azure_base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["text"] == "You said: through llama stack"
    assert result["failure"] is not None


def test_embeddings_are_deterministic_word_vectors_behind_the_same_auth(
    fresh_emulator: EmulatorHandle, request: pytest.FixtureRequest
) -> None:
    client = _openai(fresh_emulator, _token(fresh_emulator))
    request.addfinalizer(client.close)
    model = fresh_emulator.embedding_model
    result = client.embeddings.create(model=model, input=["red apple pie", "red apple", "blue sky"])
    pie, apple, sky = (item.embedding for item in result.data)
    assert len(pie) == fresh_emulator.embedding_dimension
    assert abs(sum(v * v for v in pie) - 1.0) < 1e-6

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(pie, apple) > cosine(pie, sky)  # shared words bring vectors together
    again = client.embeddings.create(model=model, input="red apple pie", dimensions=8)
    assert len(again.data[0].embedding) == 8
    assert result.usage.prompt_tokens == 7
    assert fresh_emulator.counters()["embeddings"] == 2
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model=fresh_emulator.model, input="a chat deployment")
    with (
        _openai(fresh_emulator, "not-a-token") as denied,
        pytest.raises(openai.AuthenticationError),
    ):
        denied.embeddings.create(model=model, input="x")


def test_chat_tool_call_on_bang_call_and_tool_result_reply(
    fresh_emulator: EmulatorHandle, request: pytest.FixtureRequest
) -> None:
    client = _openai(fresh_emulator, _token(fresh_emulator))
    request.addfinalizer(client.close)
    tools: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    messages: Any = [{"role": "user", "content": "!call rivers of Spain"}]
    plain = client.chat.completions.create(
        model=fresh_emulator.model, messages=messages, tools=tools
    )
    [call] = plain.choices[0].message.tool_calls or []
    assert plain.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "lookup",
        {"query": "rivers of Spain"},
    )
    stream = client.chat.completions.create(
        model=fresh_emulator.model, messages=messages, tools=tools, stream=True
    )
    deltas = [c.choices[0].delta for c in stream if c.choices]
    streamed_args = "".join(
        (tc.function.arguments or "") for d in deltas for tc in (d.tool_calls or []) if tc.function
    )
    assert json.loads(streamed_args) == {"query": "rivers of Spain"}
    follow_up = [
        *messages,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Ebro and Tagus"},
    ]
    answer = client.chat.completions.create(
        model=fresh_emulator.model, messages=follow_up, tools=tools
    )
    assert answer.choices[0].message.content == "Tool said: Ebro and Tagus"


def test_responses_route_answers_plain_input(
    fresh_emulator: EmulatorHandle, request: pytest.FixtureRequest
) -> None:
    client = _openai(fresh_emulator, _token(fresh_emulator))
    request.addfinalizer(client.close)
    response = client.responses.create(model=fresh_emulator.model, input="hello responses")
    assert response.output_text == "You said: hello responses"
    assert fresh_emulator.counters()["responses"] == 1
    with (
        _openai(fresh_emulator, "not-a-token") as denied,
        pytest.raises(openai.AuthenticationError),
    ):
        denied.responses.create(model=fresh_emulator.model, input="x")
