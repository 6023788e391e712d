"""The error tree of llama-entra.

Every failure the project raises on purpose is a ``LlamaEntraError``. Third-party errors
(azure-identity, httpx, llama-stack, openai) are translated into this tree at the boundary
where they enter (``raise ... from exc``); only ``llama_entra.app`` maps the tree to HTTP.

::

    LlamaEntraError
    ├── ConfigError               a service or run config is invalid (file, key, problem)
    ├── TokenError                no usable Entra ID token          -> 503
    │   ├── TokenUnavailableError  the authority could not be asked (down, slow, unreachable,
    │   │                          credential kind unavailable in this environment)
    │   └── TokenRejectedError     Entra ID answered and refused (wrong secret, unknown client)
    ├── UpstreamError             Llama Stack or Azure OpenAI failed   -> 502 (or its status)
    │   ├── UpstreamUnavailableError  Llama Stack unreachable or timed out -> 503
    │   │   ├── UpstreamConnectionError  the connection failed or was dropped mid-call
    │   │   └── DatabaseUnavailableError  Llama Stack's PostgreSQL database unreachable -> 503
    │   ├── UpstreamAuthError      Azure still answers 401 after one refresh and retry -> 502
    │   ├── AzureThrottledError    Azure's 429, after the retry policy  -> 429 with Azure's wait
    │   ├── AzureUnreachableError  no connection to Azure could be made (nothing was sent) -> 502
    │   ├── ContentFilterError     Azure's content filter blocked the prompt        -> 400
    │   ├── ContextLengthError     the prompt exceeds the model's context window     -> 400/413
    │   └── AzurePermissionError   Azure's 401 PermissionDenied: the identity has no role on
    │                              the resource; no token refresh helps              -> 502
    ├── NotFoundError             a named thing does not exist       -> 404
    │   ├── ModelNotFoundError     unknown model or provider
    │   └── ConversationNotFoundError  unknown conversation (or another caller's)
    ├── InvalidInputError         the caller's input is wrong        -> 422 (or 400)
    ├── QuotaExceededError        a token quota of the caller or the service is used up -> 429
    ├── ServiceOverloadedError    the worker is overloaded and a new call waited too long -> 503
    └── AuthError                 an inbound caller is not let in
        ├── UnauthenticatedError   no or bad caller credential        -> 401
        ├── ForbiddenError         authenticated, action not allowed  -> 403
        └── AuthUnavailableError   the auth backend cannot decide     -> 503 (fail closed)

Messages and causes carried by these errors are safe to show to callers: they never contain a
secret or a token. ``TokenError`` and ``UpstreamAuthError`` also carry ``status_code`` (503,
502): the ``remote::azure-entra`` provider raises them inside Llama Stack, whose servers answer
with an exception's ``status_code`` and its message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AuthError",
    "AuthUnavailableError",
    "AzurePermissionError",
    "AzureThrottledError",
    "AzureUnreachableError",
    "ConfigError",
    "ContentFilterError",
    "ContextLengthError",
    "ConversationNotFoundError",
    "DatabaseUnavailableError",
    "ForbiddenError",
    "InvalidInputError",
    "LlamaEntraError",
    "ModelNotFoundError",
    "NotFoundError",
    "QuotaExceededError",
    "TokenError",
    "TokenRejectedError",
    "TokenUnavailableError",
    "UnauthenticatedError",
    "UpstreamAuthError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamUnavailableError",
]


class LlamaEntraError(Exception):
    """Root of every error llama-entra raises on purpose."""


class ConfigError(LlamaEntraError):
    """A configuration file is missing, malformed or invalid.

    ``str(error)`` is one line: ``FILE: KEY: PROBLEM`` (``KEY`` omitted when the whole file
    is at fault), ready to print for the user.
    """

    def __init__(self, problem: str, *, file: str | None = None, key: str | None = None) -> None:
        self.problem = problem
        self.file = file
        self.key = key
        super().__init__(": ".join(part for part in (file, key, problem) if part))


class TokenError(LlamaEntraError):
    """No valid Entra ID token could be had; ``cause`` says why, without secrets."""

    status_code = 503

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(f"Entra ID token unavailable: {cause}")


class TokenUnavailableError(TokenError):
    """The authority could not be asked, or the credential kind does not work here."""


class TokenRejectedError(TokenError):
    """Entra ID answered and refused to issue a token (e.g. invalid client secret)."""


class UpstreamError(LlamaEntraError):
    """Llama Stack or Azure OpenAI answered with an error.

    ``status`` is the upstream HTTP status when there was one (401 included: the client holder
    retries an Azure 401 once with a fresh token; ``llama_entra.app`` decides what callers see).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        azure_error: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code  # Azure's own error code when it came through (``PermissionDenied``)
        # Azure's error object as Azure sent it (``code``, ``param``, ``innererror``, ...), when
        # it came through, and the headers of Azure's answer callers should see (``Retry-After``,
        # ``x-ratelimit-remaining-*``).
        self.azure_error: Mapping[str, Any] = azure_error or {}
        self.headers: Mapping[str, str] = headers or {}
        super().__init__(message)


class AzureThrottledError(UpstreamError):
    """Azure OpenAI answered 429 and the retry policy let it through: wait ``retry_after``.

    ``retry_after`` is Azure's wait in whole seconds (the larger of ``retry-after-ms`` rounded
    up and ``retry-after``), None when Azure's answer lost it on the way. ``final`` says the
    retry policy was already applied (by the ``remote::azure-entra`` provider): nobody above
    retries it again. ``status_code`` lets a Llama Stack server answer 429 with the message,
    which keeps Azure's "retry after N seconds".
    """

    status_code = 429

    def __init__(
        self,
        message: str,
        *,
        retry_after: int | None,
        wait: float | None = None,
        final: bool = False,
        azure_error: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after = retry_after
        # Azure's wait to the millisecond when it sent ``retry-after-ms`` (a resource cools
        # down for exactly that long), else ``retry_after``.
        self.wait = wait if wait is not None else retry_after
        self.final = final
        super().__init__(message, status=429, code="429", azure_error=azure_error, headers=headers)


class AzureUnreachableError(UpstreamError):
    """No connection to Azure OpenAI could be made: the request was never sent (safe to send
    to another resource, unlike a timeout or a connection dropped mid-call)."""

    def __init__(self, message: str = "Azure OpenAI is unreachable") -> None:
        super().__init__(message, status=502)


class ContentFilterError(UpstreamError):
    """Azure's content filter blocked the prompt (400 ``content_filter``).

    ``categories`` names the filter categories that fired (``hate``, ``jailbreak``, ...), read
    from Azure's ``innererror.content_filter_result``.
    """

    @property
    def categories(self) -> list[str]:
        """The categories Azure marked ``filtered`` (or ``detected``), in Azure's order."""
        inner = self.azure_error.get("innererror")
        results = inner.get("content_filter_result") if isinstance(inner, Mapping) else None
        if not isinstance(results, Mapping):
            return []
        return [
            name
            for name, result in results.items()
            if isinstance(result, Mapping) and result.get("filtered")
        ]


class ContextLengthError(UpstreamError):
    """The prompt is longer than the model's context window (400 ``context_length_exceeded``).

    ``model`` names the model asked, once the client holder knows it (lightspeed's routes say
    it in their 413).
    """

    model: str | None = None


class UpstreamUnavailableError(UpstreamError):
    """Llama Stack (or the upstream of the proxy) could not be reached in time."""


class UpstreamConnectionError(UpstreamUnavailableError):
    """The connection to Llama Stack failed, or the server dropped it mid-call.

    A Llama Stack 0.7.3 server drops a streaming call whose upstream answered 401, so for a
    stream this may be Azure refusing the token.
    """


class DatabaseUnavailableError(UpstreamUnavailableError):
    """Llama Stack's database cannot be reached; ``database`` names it, ``cause`` says why."""

    def __init__(self, database: str, cause: str) -> None:
        self.database = database
        self.cause = cause
        super().__init__(f"{database} unavailable: {cause}", status=503)


class UpstreamAuthError(UpstreamError):
    """Azure OpenAI rejected a fresh token too: the identity lacks access."""

    status_code = 502


class AzurePermissionError(UpstreamError):
    """Azure OpenAI answered 401 ``PermissionDenied``: the identity lacks a role on the resource.

    A fresh token carries the same identity, so nothing is refreshed or retried. ``object_id``
    is the principal's object id (the token's ``oid`` claim) when known: the one to assign the
    role to.
    """

    status_code = 502
    role = "Cognitive Services OpenAI User"

    def __init__(self, object_id: str | None) -> None:
        self.object_id = object_id
        principal = f"principal {object_id}" if object_id else "the service's Entra ID identity"
        super().__init__(
            f"Azure OpenAI answered PermissionDenied: assign the '{self.role}' role on the Azure "
            f"OpenAI resource to {principal}",
            status=401,
            code="PermissionDenied",
        )


class NotFoundError(LlamaEntraError):
    """A model or conversation the caller named does not exist.

    ``response`` is the short summary callers see (lightspeed-stack's wording), the message
    the cause.
    """

    response = "Not found"


class ModelNotFoundError(NotFoundError):
    """No served model matches the model (and provider) the caller named."""

    def __init__(self, cause: str, *, response: str = "Model not found") -> None:
        self.response = response
        super().__init__(cause)


class ConversationNotFoundError(NotFoundError):
    """The conversation does not exist, or belongs to another caller."""

    response = "Conversation not found"

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        super().__init__(f"Conversation with ID {conversation_id} does not exist")


class InvalidInputError(LlamaEntraError):
    """The caller's input is well-formed JSON but not acceptable (422, or 400 for a bad path id).

    ``response`` is the summary, ``cause`` the detail, as in lightspeed-stack's error bodies.
    """

    def __init__(self, response: str, cause: str, *, status: int = 422) -> None:
        self.response = response
        self.cause = cause
        self.status = status
        super().__init__(f"{response}: {cause}")


class AuthError(LlamaEntraError):
    """An inbound caller is not let in; the message says why without echoing credentials."""


class UnauthenticatedError(AuthError):
    """The caller sent no credential, or one that is not valid (401)."""


class ForbiddenError(AuthError):
    """The caller is known but may not perform this action (403)."""


class AuthUnavailableError(AuthError):
    """The authentication backend could not be asked; the request is refused (503)."""


class QuotaExceededError(LlamaEntraError):
    """A token quota (``limiter``, a configured limiter's name) has nothing left.

    ``cause`` is lightspeed-stack's wording ("User ID has no available tokens", "Cluster has
    no available tokens."); ``retry_after`` is the whole seconds until the limiter's period
    turns and its quota is reset or increased.
    """

    def __init__(self, limiter: str, cause: str, retry_after: int) -> None:
        self.limiter = limiter
        self.cause = cause
        self.retry_after = retry_after
        super().__init__(cause)


class ServiceOverloadedError(LlamaEntraError):
    """The worker's event loop stayed overloaded while a new call waited its turn (503).

    ``retry_after`` is a whole number of seconds worth waiting before trying again.
    """

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__("the service is overloaded: the call waited its turn too long")
