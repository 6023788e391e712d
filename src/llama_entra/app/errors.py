"""The only place where errors become HTTP answers: one body shape for every status.

``{"detail": {"response": <what failed>, "cause": <why>}}``; token problems are 503 naming
Entra ID, Azure errors 502 (client-side statuses such as 429 pass through), a missing model or
conversation 404, bad bodies 422, inbound auth 401/403/503. Nothing a caller or Azure can cause
becomes a 500, and no body carries a secret or a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from llama_entra.errors import (
    AuthUnavailableError,
    DatabaseUnavailableError,
    ForbiddenError,
    LlamaEntraError,
    NotFoundError,
    TokenError,
    UnauthenticatedError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamUnavailableError,
)

__all__ = ["error_body", "install_error_handlers", "status_and_body"]

logger = logging.getLogger(__name__)
# Upstream statuses that say something about the caller's request and pass through; any other
# (401 from Azure after the retry, 403, 426, 5xx) is the service's problem: 502.
_CALLERS_STATUSES = frozenset({400, 404, 409, 413, 422, 429})


def error_body(response: str, cause: str) -> dict[str, Any]:
    """The one error body shape."""
    return {"detail": {"response": response, "cause": cause}}


def status_and_body(exc: LlamaEntraError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """HTTP status, body and extra headers for ``exc``."""
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
            return 404, error_body("Not found", str(exc)), {}
        case DatabaseUnavailableError():
            return 503, error_body("Database unavailable", exc.message), {"Retry-After": "5"}
        case UpstreamUnavailableError():
            return 503, error_body("Llama Stack unavailable", exc.message), {"Retry-After": "5"}
        case UpstreamAuthError():
            return 502, error_body("Azure OpenAI rejected the Entra ID token", exc.message), {}
        case UpstreamError():
            status = exc.status if exc.status in _CALLERS_STATUSES else 502
            headers = {"Retry-After": "1"} if status == 429 else {}
            return status, error_body("Azure OpenAI or Llama Stack error", exc.message), headers
        case _:
            return 500, error_body("Internal error", type(exc).__name__), {}


async def _llama_entra_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LlamaEntraError)  # noqa: S101 - registered for this type only
    status, body, headers = status_and_body(exc)
    if status >= 500:
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc)
    return JSONResponse(body, status_code=status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    cause = f"{where}: {first.get('msg', 'invalid')}"
    return JSONResponse(error_body("Invalid request", cause), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
    headers = dict(exc.headers) if exc.headers else None
    return JSONResponse(
        error_body(_reason(exc.status_code), str(exc.detail)), exc.status_code, headers
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("Internal error", type(exc).__name__), status_code=500)


def _reason(status: int) -> str:
    from http import HTTPStatus

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
