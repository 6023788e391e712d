"""Unit: Azure's PermissionDenied told apart from a stale token, remembered until a success."""

from __future__ import annotations

import httpx
import jwt
import openai
import pytest

from llama_entra.backends.upstream import azure_code, translate_common
from llama_entra.entra.claims import principal_of
from llama_entra.errors import AzurePermissionError, UpstreamError
from llama_entra.stack.permission import PermissionWatch, is_permission_denied

_BODY = {
    "error": {
        "code": "PermissionDenied",
        "message": "Principal does not have access to API/Operation.",
    }
}


def _token(**claims: object) -> str:
    return jwt.encode({"aud": "https://cognitiveservices.azure.com", **claims}, "k" * 32)


def test_principal_of_reads_the_oid_claim_and_tolerates_anything_else() -> None:
    assert principal_of(_token(oid="1234-abcd")) == "1234-abcd"
    assert principal_of(_token()) is None
    assert principal_of("not-a-jwt") is None
    assert principal_of(None) is None


@pytest.mark.parametrize(
    ("message", "code", "expected"),
    [
        (
            "Error code: 401 - {'error': {'code': 'PermissionDenied', 'message': 'x'}}",
            None,
            "PermissionDenied",
        ),
        ('{"error": {"code": "content_filter"}}', None, "content_filter"),
        ("Principal does not have access to API/Operation.", None, "PermissionDenied"),
        ("Unauthorized. Access token is missing, invalid...", None, None),
        ("anything", "DeploymentNotFound", "DeploymentNotFound"),
    ],
)
def test_azure_code_from_the_code_or_the_text(
    message: str, code: str | None, expected: str | None
) -> None:
    assert azure_code(message, code) == expected


def test_openai_permission_denied_keeps_azures_code() -> None:
    response = httpx.Response(401, json=_BODY, request=httpx.Request("POST", "https://azure/x"))
    error = openai.AuthenticationError("denied", response=response, body=_BODY["error"])
    translated = translate_common(error)
    assert isinstance(translated, UpstreamError)
    assert (translated.status, translated.code) == (401, "PermissionDenied")
    assert is_permission_denied(translated)


def test_watch_names_the_principal_counts_and_clears_on_success() -> None:
    watch = PermissionWatch()
    error = watch.refused(_token(oid="0bj-1d"))
    assert isinstance(error, AzurePermissionError)
    assert error.object_id == "0bj-1d"
    assert "Cognitive Services OpenAI User" in error.message
    assert "principal 0bj-1d" in error.message
    assert error.status_code == 502
    watch.refused(None)
    assert watch.count == 2
    assert watch.denied is not None and watch.denied.object_id is None
    watch.succeeded()
    assert watch.denied is None
    assert watch.count == 2
