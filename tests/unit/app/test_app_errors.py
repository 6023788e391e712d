"""Unit tests: llama-entra errors become the one HTTP error shape, with the right status."""

from __future__ import annotations

import pytest

from llama_entra.app.errors import status_and_body
from llama_entra.errors import (
    AuthUnavailableError,
    ForbiddenError,
    LlamaEntraError,
    NotFoundError,
    TokenRejectedError,
    TokenUnavailableError,
    UnauthenticatedError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamUnavailableError,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (TokenUnavailableError("authority unreachable"), 503),
        (TokenRejectedError("AADSTS7000215: invalid client secret"), 503),
        (UnauthenticatedError("missing bearer token"), 401),
        (ForbiddenError("role reader may not chat"), 403),
        (AuthUnavailableError("auth endpoint timed out"), 503),
        (NotFoundError("model 'x' is not served"), 404),
        (UpstreamUnavailableError("Llama Stack is unreachable"), 503),
        (UpstreamAuthError("rejected a fresh token", status=502), 502),
        (UpstreamError("rate limited", status=429), 429),
        (UpstreamError("content filter", status=400), 400),
        (UpstreamError("azure exploded", status=500), 502),
        (UpstreamError("Azure refused a static key", status=401), 502),  # not the caller's
        (UpstreamError("client version too old", status=426), 502),
        (UpstreamError("no status"), 502),
    ],
)
def test_status_and_body_maps_each_error(error: LlamaEntraError, status: int) -> None:
    got, body, _ = status_and_body(error)
    assert got == status
    assert set(body["detail"]) == {"response", "cause"}
    assert body["detail"]["cause"]


def test_token_error_names_entra_and_its_cause() -> None:
    status, body, headers = status_and_body(TokenRejectedError("invalid client secret"))
    assert (status, headers["Retry-After"]) == (503, "5")
    assert body == {
        "detail": {"response": "Entra ID token unavailable", "cause": "invalid client secret"}
    }


def test_unauthenticated_asks_for_bearer() -> None:
    _, _, headers = status_and_body(UnauthenticatedError("no credential"))
    assert headers == {"WWW-Authenticate": "Bearer"}


def test_openai_routes_get_openai_errors_and_models_gets_both() -> None:
    from llama_entra.app.errors import shape_for, shaped_body

    assert shape_for("/v1/chat/completions") == "openai"
    assert shape_for("/v1/responses/resp_1") == "openai"
    assert shape_for("/v1/models") == "both"
    assert shape_for("/v1/query") == "lightspeed"
    assert shape_for("/v1/anything", known_route=False) == "both"
    body = shaped_body("both", 429, "Azure OpenAI or Llama Stack error", "slow down", None)
    assert body["detail"]["cause"] == "slow down"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"] == "Azure OpenAI or Llama Stack error: slow down"


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (ValueError("No function call found for call_id call_x"), 400),
        (PermissionError("no"), 403),
        (NotImplementedError("later"), 501),
        (TimeoutError(), 504),
        (ValueError("API key not provided"), 502),
        (RuntimeError("boom"), 502),
    ],
)
def test_library_exceptions_get_the_llama_stack_servers_status(
    raised: Exception, status: int
) -> None:
    from llama_entra.backends.upstream import translate_common

    translated = translate_common(raised)
    assert isinstance(translated, UpstreamError)
    assert translated.status == status
