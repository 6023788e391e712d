"""Unit tests of the azure-identity -> llama-entra error translation."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import CredentialUnavailableError

from llama_entra.entra import translate_error
from llama_entra.entra.translate import first_sentence
from llama_entra.errors import TokenRejectedError, TokenUnavailableError


def _translate(exc: BaseException) -> TokenRejectedError | TokenUnavailableError:
    error = translate_error(exc, kind="client_secret", timeout_seconds=10)
    assert isinstance(error, TokenRejectedError | TokenUnavailableError)
    return error


def _auth_error(message: str, status: int | None = None) -> ClientAuthenticationError:
    error = ClientAuthenticationError(message=message)
    error.status_code = status
    return error


def test_translate_aadsts_description_becomes_rejected_with_code_and_first_sentence() -> None:
    error = _translate(
        _auth_error(
            "Microsoft Entra ID error '(invalid_client) AADSTS7000215: Invalid client secret "
            "provided. Ensure the secret being sent is the value.\r\nTrace ID: abc\r\n'",
            401,
        )
    )
    assert isinstance(error, TokenRejectedError)
    assert error.cause == "AADSTS7000215: Invalid client secret provided."


def test_translate_aadsts_single_sentence_without_period_drops_closing_quote() -> None:
    error = _translate(
        _auth_error(
            "Microsoft Entra ID error '(unauthorized_client) AADSTS700016: Application with "
            "identifier 'abc' was not found'"
        )
    )
    assert error.cause == "AADSTS700016: Application with identifier 'abc' was not found"


def test_translate_entra_5xx_is_unavailable_not_rejected() -> None:
    error = _translate(
        _auth_error("Microsoft Entra ID error '(temporarily_unavailable) AADSTS50001: Busy.'", 503)
    )
    assert isinstance(error, TokenUnavailableError)
    assert error.cause == "Entra ID answered HTTP 503: AADSTS50001: Busy."


def test_translate_error_without_aadsts_names_the_error_code() -> None:
    error = _translate(_auth_error("Microsoft Entra ID error '(invalid_request) bad'", 400))
    assert isinstance(error, TokenRejectedError)
    assert error.cause == "client_secret credential refused: invalid_request"


def test_translate_credential_unavailable_is_unavailable_with_reason() -> None:
    error = _translate(CredentialUnavailableError(message="No managed identity endpoint found."))
    assert isinstance(error, TokenUnavailableError)
    assert (
        error.cause == "client_secret credential unavailable: No managed identity endpoint found."
    )


@pytest.mark.parametrize("kind", [ServiceRequestError, ServiceResponseError])
def test_translate_connection_errors_say_authority_unreachable(kind: type[Exception]) -> None:
    message = "Cannot connect to host 127.0.0.1:9 ssl:default [refused]"
    error = _translate(kind(message))
    assert isinstance(error, TokenUnavailableError)
    assert error.cause == f"Entra ID authority unreachable: {message}"


def test_translate_timeout_names_the_limit() -> None:
    error = translate_error(TimeoutError(), kind="certificate", timeout_seconds=2.5)
    assert error.cause == "Entra ID token request timed out after 2.5 s"


def test_translate_other_http_error_keeps_status() -> None:
    error = HttpResponseError(message="Bad gateway")
    error.status_code = 502
    assert _translate(error).cause == "Entra ID answered HTTP 502: Bad gateway"


def test_translate_bad_certificate_file_says_credential_cannot_be_built() -> None:
    error = translate_error(
        ValueError("Could not deserialize key data. More detail here."),
        kind="certificate",
        timeout_seconds=10,
    )
    assert isinstance(error, TokenUnavailableError)
    assert error.cause == "cannot build the certificate credential: Could not deserialize key data."


def test_translate_unknown_exception_names_only_its_type() -> None:
    error = _translate(RuntimeError("token=abc.def.ghi"))
    assert error.cause == "unexpected RuntimeError from the client_secret credential"


def test_first_sentence_caps_length() -> None:
    assert len(first_sentence("x" * 500)) == 200
    assert first_sentence("  One. Two.  ") == "One."
    assert first_sentence("line one\nline two") == "line one"
