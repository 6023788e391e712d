"""Unit tests of the translation both backends share (library-mode openai errors, httpx)."""

from __future__ import annotations

import httpx
import openai
import pytest

from llama_entra.backends.upstream import translate_common, upstream_error
from llama_entra.errors import (
    NotFoundError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamUnavailableError,
)

_REQUEST = httpx.Request("POST", "https://azure.example/openai/v1/chat/completions")


def _azure(status: int, message: str) -> openai.APIStatusError:
    body = {"error": {"message": message}}
    response = httpx.Response(status, request=_REQUEST, json=body)
    return openai.APIStatusError(message, response=response, body=body)


def test_translate_azure_401_keeps_its_status_for_one_refresh() -> None:
    error = translate_common(_azure(401, "Access token is missing or invalid"))
    assert isinstance(error, UpstreamError)
    assert (error.status, str(error)) == (401, "Access token is missing or invalid")


def test_translate_responses_500_that_wraps_azures_401_counts_as_401() -> None:
    error = upstream_error(500, "Error code: 401 - Unauthorized. Access token is invalid")
    assert isinstance(error, UpstreamError) and error.status == 401


def test_translate_404_is_not_found() -> None:
    assert isinstance(translate_common(_azure(404, "no such deployment")), NotFoundError)


@pytest.mark.parametrize(
    ("exc", "expected", "status"),
    [
        (httpx.ReadTimeout("slow", request=_REQUEST), UpstreamUnavailableError, None),
        (httpx.ConnectError("refused", request=_REQUEST), UpstreamConnectionError, None),
        (openai.APIConnectionError(request=_REQUEST), UpstreamError, 502),
        (openai.APITimeoutError(request=_REQUEST), UpstreamError, 504),
    ],
)
def test_translate_transport_failures(
    exc: Exception, expected: type[Exception], status: int | None
) -> None:
    error = translate_common(exc)
    assert type(error) is expected
    assert isinstance(error, UpstreamError) and error.status == status


def test_translate_caller_value_error_is_400_not_502() -> None:
    error = translate_common(ValueError("Constructed path '/v1/conversations/./items' ..."))
    assert isinstance(error, UpstreamError)
    assert error.status == 400
    assert str(error).startswith("Constructed path")


def test_translate_missing_provider_data_is_502_without_a_secret() -> None:
    error = translate_common(ValueError("API key not provided. Please pass it in X-...-Data"))
    assert isinstance(error, UpstreamError) and error.status == 502
    assert str(error) == "Azure OpenAI credentials were not sent with the call"


def test_translate_anything_else_is_502_with_its_first_line() -> None:
    error = translate_common(RuntimeError("boom\nsecond line"))
    assert isinstance(error, UpstreamError) and error.status == 502
    assert str(error) == "Llama Stack call failed: boom"
