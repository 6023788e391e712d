"""Unit: the adapter's spec, life cycle and error translation (installed backend, no network)."""

from __future__ import annotations

import importlib
from typing import Any

import httpx
import openai
import pytest
from pydantic import SecretStr

from llama_entra.backends import active_backend
from llama_entra.backends.upstream import upstream_error
from llama_entra.config import AzureRetryPolicy
from llama_entra.errors import (
    AzureThrottledError,
    TokenRejectedError,
    TokenUnavailableError,
    UpstreamAuthError,
    UpstreamError,
)
from llama_entra.provider import get_provider_spec
from llama_entra.provider.adapter import entra_errors

_REQUEST = httpx.Request("POST", "https://azure.test/openai/v1/chat/completions")


def _config(**extra: Any) -> Any:
    dotted = get_provider_spec().config_class
    module, _, name = dotted.rpartition(".")
    config_class = getattr(importlib.import_module(module), name)
    return config_class(
        base_url="https://azure.test/openai/v1",
        azure_entra_id={
            "tenant_id": "t",
            "client_id": "c",
            "client_secret": "s3cr3t",
            "authority_host": "https://127.0.0.1:9",
        },
        **extra,
    )


def test_provider_spec_points_back_to_this_package() -> None:
    spec = get_provider_spec()
    assert spec.provider_type == "remote::azure-entra"
    assert spec.module == "llama_entra.provider"
    assert spec.config_class.startswith("llama_entra.backends.")
    assert spec.provider_data_validator is None  # provider data never carries a key here


async def test_adapter_makes_no_session_or_entra_call_until_used_and_closes_it() -> None:
    adapter = active_backend().inference_provider().create_adapter(_config())
    await adapter.initialize()
    assert adapter.token_manager is None
    assert await adapter.list_models() is None  # refresh_models off: no Azure call at start-up
    assert adapter.token_manager is None
    session = await adapter._session()
    assert adapter.client is session.client()
    assert session.tokens.status().token_requests == 0
    assert adapter.get_api_key() != "s3cr3t"
    await adapter.shutdown()
    assert adapter.token_manager is None
    with pytest.raises(TokenUnavailableError, match="closed"):
        await session.tokens.token()


def test_entra_errors_unwraps_a_token_error_behind_a_connection_error() -> None:
    with pytest.raises(TokenRejectedError) as raised, entra_errors():
        try:
            raise TokenRejectedError("AADSTS7000215: Invalid client secret provided.")
        except TokenRejectedError as exc:
            raise openai.APIConnectionError(request=_REQUEST) from exc
    assert raised.value.status_code == 503
    assert str(raised.value).startswith("Entra ID token unavailable: AADSTS7000215")


def test_entra_errors_turns_azure_401_after_the_retry_into_502() -> None:
    response = httpx.Response(401, request=_REQUEST, json={"error": {"message": "Unauthorized"}})
    with pytest.raises(UpstreamAuthError) as raised, entra_errors():
        raise openai.AuthenticationError("Unauthorized", response=response, body=None)
    assert raised.value.status_code == 502
    assert "Cognitive Services OpenAI User" in str(raised.value)


def test_entra_errors_leaves_other_connection_errors_alone() -> None:
    with pytest.raises(openai.APIConnectionError), entra_errors():
        raise openai.APIConnectionError(request=_REQUEST)


def test_upstream_error_turns_a_servers_entra_503_into_a_token_error() -> None:
    error = upstream_error(503, "Entra ID token unavailable: AADSTS90033: Entra ID is unavailable.")
    assert isinstance(error, TokenUnavailableError)
    assert error.cause == "AADSTS90033: Entra ID is unavailable."
    other = upstream_error(503, "Service Unavailable")
    assert isinstance(other, UpstreamError)
    assert not isinstance(other, TokenUnavailableError)


async def test_adapter_with_endpoints_moves_a_call_before_any_output_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 429 or a refused connection moves the call; a timeout (maybe billed) does not."""
    second = "https://sweden.test/openai/v1"
    adapter = (
        active_backend()
        .inference_provider()
        .create_adapter(_config(endpoints={"base_urls": [second]}))
    )
    await adapter.initialize()
    session = await adapter._session()

    async def token() -> SecretStr:
        return SecretStr("t")

    monkeypatch.setattr(session.tokens, "token", token)
    session.retry.policy = AzureRetryPolicy(max_retries=0)  # no sleeping for Azure's waits here
    throttled = httpx.Response(429, request=_REQUEST, headers={"retry-after": "30"})
    answers: dict[str, BaseException] = {
        "azure.test": openai.RateLimitError("busy", response=throttled, body=None)
    }
    seen: list[str] = []

    async def call() -> str:
        host = adapter.client.base_url.host
        seen.append(host)
        if host in answers:
            raise answers[host]
        return host

    assert await adapter._azure(call) == "sweden.test"
    assert await adapter._azure(call) == "sweden.test"  # the first cools down for 30 s
    assert seen == ["azure.test", "sweden.test", "sweden.test"]
    try:
        raise httpx.ConnectError("refused")
    except httpx.ConnectError as refused:
        unreachable = openai.APIConnectionError(request=_REQUEST)
        unreachable.__cause__ = refused
    answers["sweden.test"] = unreachable
    with pytest.raises(AzureThrottledError) as everyone:
        await adapter._azure(call)
    assert everyone.value.final  # the server answers 429 with the soonest wait, nobody retries
    assert everyone.value.retry_after == 1
    session.pool.deployments[0].cooling_until = 0  # the first one's wait is over
    answers.clear()
    answers["azure.test"] = openai.APITimeoutError(request=_REQUEST)
    seen.clear()
    with pytest.raises(openai.APITimeoutError):
        await adapter._azure(call)
    assert seen == ["azure.test"]  # not sent to the other resource
    await adapter.shutdown()
