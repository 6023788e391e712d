"""The only place where errors become HTTP answers, in the shape the route's clients expect.

lightspeed-stack's routes (``/v1/query``, conversations, info, ...) answer
``{"detail": {"response": <what failed>, "cause": <why>}}``; the OpenAI-compatible routes
(``/v1/chat/completions``, ``/v1/responses``) answer OpenAI's ``{"error": {"message", "type",
"code", "param"}}`` so SDKs expose ``e.code`` and ``e.type``; routes both kinds of client call
(``/v1/models``) and unknown routes carry both keys. Token problems are 503 naming Entra ID,
Azure errors 502 (client-side statuses such as 429 pass through), unknown models and
conversations 404, bad input 422 (400 for a malformed id in a path; a body that fails validation
is FastAPI's native ``detail`` list on lightspeed's routes), inbound auth 401/403/503.
Azure's own answers keep their meaning (README, "Azure's answers"): its 429 keeps Azure's wait
in ``Retry-After`` and the ``x-ratelimit-remaining-*`` headers; on the OpenAI-compatible routes
a blocked prompt or a too-long one is Azure's own error object (``content_filter`` with its
``innererror``, ``context_length_exceeded``); on lightspeed's routes a too-long prompt is its
413 "Prompt is too long" and a blocked prompt a 400 naming the filter categories that fired.
A used-up token quota is 429 with lightspeed-stack's "The quota has been exceeded" (OpenAI's
``insufficient_quota`` on its routes) and ``Retry-After`` until the quota's period turns.
Nothing a caller or Azure can cause becomes a 500, and no body carries a secret or a traceback.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from llama_entra.errors import (
    AuthUnavailableError,
    AzurePermissionError,
    AzureThrottledError,
    ContentFilterError,
    ContextLengthError,
    ConversationNotFoundError,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidInputError,
    LlamaEntraError,
    ModelNotFoundError,
    NotFoundError,
    QuotaExceededError,
    ServiceOverloadedError,
    TokenError,
    UnauthenticatedError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamUnavailableError,
)

__all__ = [
    "Shape",
    "error_body",
    "error_code",
    "install_error_handlers",
    "openai_error",
    "openai_error_of",
    "shape_for",
    "shaped_body",
    "status_and_body",
]

logger = logging.getLogger(__name__)
# Upstream statuses that say something about the caller's request and pass through; any other
# (401 from Azure after the retry, 403, 426, 5xx) is the service's problem: 502.
_CALLERS_STATUSES = frozenset({400, 404, 409, 413, 422, 429})

Shape = Literal["lightspeed", "openai", "both"]
_OPENAI_ROUTES = ("/v1/chat/completions", "/v1/responses")
_BOTH_ROUTES = ("/v1/models",)


def shape_for(path: str, *, known_route: bool = True) -> Shape:
    """Which error shape the clients of ``path`` read (unknown routes get both)."""
    if not known_route:
        return "both"
    if any(path == route or path.startswith(route + "/") for route in _OPENAI_ROUTES):
        return "openai"
    if path in _BOTH_ROUTES:
        return "both"
    return "lightspeed"


def error_body(response: str, cause: str) -> dict[str, Any]:
    """lightspeed-stack's error body."""
    return {"detail": {"response": response, "cause": cause}}


def openai_error(status: int, response: str, cause: str, code: str | None) -> dict[str, Any]:
    """OpenAI's error object (the value of the body's ``error`` key)."""
    message = f"{response}: {cause}" if cause and cause != response else response
    return {"message": message, "type": _openai_type(status), "code": code, "param": None}


def shaped_body(
    shape: Shape, status: int, response: str, cause: str, code: str | None
) -> dict[str, Any]:
    """The error body for ``shape``."""
    body: dict[str, Any] = {}
    if shape in ("lightspeed", "both"):
        body |= error_body(response, cause)
    if shape in ("openai", "both"):
        body["error"] = openai_error(status, response, cause, code)
    return body


def status_and_body(
    exc: LlamaEntraError, shape: Shape = "lightspeed"
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """HTTP status, lightspeed body and extra headers for ``exc`` (as ``shape``'s route sees it)."""
    match exc:
        case TokenError():
            return 503, error_body("Entra ID token unavailable", exc.cause), {"Retry-After": "5"}
        case UnauthenticatedError():
            return 401, error_body("Not authenticated", str(exc)), {"WWW-Authenticate": "Bearer"}
        case ForbiddenError():
            return 403, error_body("Forbidden", str(exc)), {}
        case AuthUnavailableError():
            return 503, error_body("Authentication unavailable", str(exc)), {}
        case NotFoundError():
            return 404, error_body(exc.response, str(exc)), {}
        case InvalidInputError():
            return exc.status, error_body(exc.response, exc.cause), {}
        case QuotaExceededError():
            # lightspeed-stack's QuotaExceededResponse; the wait is until the period turns.
            headers = {"Retry-After": str(exc.retry_after)}
            return 429, error_body("The quota has been exceeded", exc.cause), headers
        case ServiceOverloadedError():
            headers = {"Retry-After": str(exc.retry_after)}
            return 503, error_body("Service overloaded", str(exc)), headers
        case DatabaseUnavailableError():
            return 503, error_body("Database unavailable", exc.message), {"Retry-After": "5"}
        case UpstreamUnavailableError():
            return 503, error_body("Llama Stack unavailable", exc.message), {"Retry-After": "5"}
        case UpstreamAuthError():
            return 502, error_body("Azure OpenAI rejected the Entra ID token", exc.message), {}
        case AzurePermissionError():
            return 502, error_body("Azure OpenAI denied the identity access", exc.message), {}
        case AzureThrottledError():
            # Azure's wait when it came through; else a second, as before Azure's was known.
            headers = {"Retry-After": "1", **exc.headers}
            return 429, error_body("Azure OpenAI rate limit reached", exc.message), headers
        case ContentFilterError():
            # A llama-stack server keeps Azure's message only, not which categories fired.
            cause = "Azure OpenAI's content filter blocked the prompt"
            if exc.categories:
                cause += f" (categories: {', '.join(exc.categories)})"
            return 400, error_body("Prompt blocked by the content filter", cause), {}
        case ContextLengthError():
            return (
                (413 if shape == "lightspeed" else 400),
                error_body("Prompt is too long", _too_long_cause(exc.model)),
                {},
            )
        case UpstreamError():
            status = exc.status if exc.status in _CALLERS_STATUSES else 502
            headers = {"Retry-After": "1"} if status == 429 else {}
            return status, error_body("Azure OpenAI or Llama Stack error", exc.message), headers
        case _:
            return 500, error_body("Internal error", type(exc).__name__), {}


def openai_error_of(exc: LlamaEntraError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, OpenAI error object and headers of ``exc`` on an OpenAI-compatible route.

    Azure's own error object, when it came through, is kept as Azure sent it (``code``,
    ``param``, ``innererror``), so an SDK sees what it would see talking to Azure.
    """
    status, body, headers = status_and_body(exc, "openai")
    detail = body["detail"]
    error = openai_error(status, detail["response"], detail["cause"], error_code(exc, status))
    if isinstance(exc, QuotaExceededError):
        error["type"] = "insufficient_quota"  # OpenAI's type for a used-up quota
    azure = exc.azure_error if isinstance(exc, UpstreamError) else {}
    if azure:
        error = {**error, **azure, "message": str(azure.get("message") or error["message"])}
    return status, error, headers


def _too_long_cause(model: str | None) -> str:
    """lightspeed-stack's words for a prompt over the context window (its PromptTooLongResponse)."""
    if model:
        return f"The input exceeds the context window size of model '{model}'."
    return "The prompt exceeds the maximum allowed length."


def error_code(exc: LlamaEntraError, status: int) -> str:
    """A stable machine-readable code for OpenAI-shaped errors."""
    match exc:
        case ModelNotFoundError():
            return "model_not_found"
        case ConversationNotFoundError():
            return "conversation_not_found"
        case TokenError():
            return "entra_token_unavailable"
        case UnauthenticatedError():
            return "invalid_api_key"
        case ForbiddenError():
            return "permission_denied"
        case UpstreamUnavailableError():
            return "llama_stack_unavailable"
        case UpstreamAuthError():
            return "azure_rejected_token"
        case AzurePermissionError():
            return "PermissionDenied"
        case QuotaExceededError():
            return "insufficient_quota"
        case ServiceOverloadedError():
            return "service_overloaded"
        case _:
            return _status_code(status)


def _status_code(status: int) -> str:
    return {
        400: "invalid_request",
        401: "invalid_api_key",
        403: "permission_denied",
        404: "not_found",
        405: "method_not_allowed",
        413: "request_too_large",
        422: "invalid_request",
        429: "rate_limit_exceeded",
    }.get(status, "upstream_error" if status >= 500 else "invalid_request")


def _openai_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def _known_route(request: Request) -> bool:
    return request.scope.get("route") is not None


async def _llama_entra_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LlamaEntraError)  # noqa: S101 - registered for this type only
    shape = shape_for(request.url.path)
    status, body, headers = status_and_body(exc, shape)
    if status >= 500:
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc)
    detail = body["detail"]
    content = shaped_body(
        shape, status, detail["response"], detail["cause"], error_code(exc, status)
    )
    if "error" in content:
        content["error"] = openai_error_of(exc)[1]
    return JSONResponse(content, status_code=status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A body, query or path that fails validation: 422 in the route's dialect.

    lightspeed-stack's routes answer what FastAPI answers by default (``{"detail": [{"type",
    "loc", "msg", "input", ...}]}``, model validators' messages as pydantic renders them:
    ``"Value error, ..."``), since that is what lightspeed-stack itself sends and its clients
    read ``loc`` and match ``msg``. The OpenAI-compatible routes answer OpenAI's error object
    naming the first field; routes read by both kinds of client carry both.
    """
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    shape = shape_for(request.url.path)
    # A body that is not JSON comes back as bytes in ``input``: shown as text, never a 500.
    errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: _bytes_as_text})
    native: dict[str, Any] = {"detail": errors}
    if shape == "lightspeed":
        return JSONResponse(native, status_code=422)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    error = openai_error(422, "Invalid request", f"{where}: {message}", "invalid_request")
    error["param"] = where
    content = {"error": error} if shape == "openai" else native | {"error": error}
    return JSONResponse(content, status_code=422)


def _bytes_as_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
    headers = dict(exc.headers) if exc.headers else None
    known = _known_route(request)
    shape = shape_for(request.url.path, known_route=known)
    status = exc.status_code
    response, cause = _reason(status), str(exc.detail)
    if not known and status in (404, 405):
        # Not an unknown model: say which URL is unknown, as OpenAI does ("Invalid URL").
        response = "Invalid URL" if status == 404 else "Method not allowed"
        cause = f"{request.method} {request.url.path}"
    code = "unknown_url" if not known and status == 404 else _status_code(status)
    return JSONResponse(shaped_body(shape, status, response, cause, code), status, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    shape = shape_for(request.url.path)
    body = shaped_body(shape, 500, "Internal error", type(exc).__name__, "internal_error")
    return JSONResponse(body, status_code=500)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(LlamaEntraError, _llama_entra_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
