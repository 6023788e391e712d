"""Translate azure-identity failures into llama-entra's token errors, with safe causes.

``TokenRejectedError``: Entra ID (or the managed identity endpoint) answered and refused, e.g.
``AADSTS7000215: Invalid client secret provided.``. ``TokenUnavailableError``: the authority
could not be asked (unreachable, TLS, timeout, 5xx), or the credential cannot work here.

A cause is one short sentence: Entra's AADSTS code with the first sentence of its description,
or what went wrong on the way. It never carries the request (where the secret is), only what
azure-identity reports about the response, which it already scrubs of tokens.
"""

from __future__ import annotations

import re

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import CredentialUnavailableError

from llama_entra.errors import TokenError, TokenRejectedError, TokenUnavailableError

__all__ = ["first_sentence", "translate_error"]

_MAX_CAUSE = 200
_AADSTS = re.compile(r"(AADSTS\d+):?\s*(.*)", re.DOTALL)
_ERROR_CODE = re.compile(r"Microsoft Entra ID error '\((\w+)\)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s|[\r\n]")


def first_sentence(text: str) -> str:
    """The first sentence (or line) of ``text``, whitespace-trimmed and at most 200 characters."""
    text = text.strip()
    match = _SENTENCE_END.search(text)
    sentence = text[: match.start()] if match else text
    sentence = sentence.strip()
    return sentence if len(sentence) <= _MAX_CAUSE else sentence[: _MAX_CAUSE - 3] + "..."


def translate_error(exc: BaseException, *, kind: str, timeout_seconds: float) -> TokenError:
    """Map an exception raised while building or asking credential ``kind`` to a token error."""
    if isinstance(exc, TokenError):
        return exc
    if isinstance(exc, TimeoutError):
        return TokenUnavailableError(
            f"Entra ID token request timed out after {timeout_seconds:g} s"
        )
    # CredentialUnavailableError subclasses ClientAuthenticationError: test it first.
    if isinstance(exc, CredentialUnavailableError):
        return TokenUnavailableError(f"{kind} credential unavailable: {_message(exc)}")
    if isinstance(exc, ClientAuthenticationError):
        return _from_authentication_error(exc, kind)
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TokenUnavailableError(f"Entra ID authority unreachable: {_message(exc)}")
    if isinstance(exc, HttpResponseError):
        return TokenUnavailableError(f"Entra ID answered HTTP {exc.status_code}: {_message(exc)}")
    if isinstance(exc, ValueError | OSError):
        # Raised while building the credential: bad certificate, password, tenant id, file.
        return TokenUnavailableError(f"cannot build the {kind} credential: {_message(exc)}")
    return TokenUnavailableError(f"unexpected {type(exc).__name__} from the {kind} credential")


def _from_authentication_error(exc: ClientAuthenticationError, kind: str) -> TokenError:
    message = str(exc.message or "")
    status = exc.status_code or (exc.response.status_code if exc.response is not None else None)
    aadsts = _AADSTS.search(message)
    if aadsts is not None:
        cause = f"{aadsts.group(1)}: {first_sentence(aadsts.group(2).rstrip("'"))}"
    else:
        code = _ERROR_CODE.search(message)
        cause = code.group(1) if code else _message(exc)
    if status is not None and (status >= 500 or status == 429):
        return TokenUnavailableError(f"Entra ID answered HTTP {status}: {cause}")
    return TokenRejectedError(cause if aadsts else f"{kind} credential refused: {cause}")


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return first_sentence(str(text))
