"""Pure ASGI middleware: request id, body size limit, access log with principal, metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llama_entra.app.errors import shape_for, shaped_body
from llama_entra.app.metrics import ServiceMetrics
from llama_entra.logs import bind_request_id
from llama_entra.telemetry.spans import tag_request

__all__ = ["RequestContextMiddleware"]

access_log = logging.getLogger("llama_entra.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class _BodyTooLargeError(Exception):
    pass


class RequestContextMiddleware:
    """Gives each request an id (``X-Request-ID``), caps its body, logs and counts it."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: ServiceMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {key.decode("latin-1").lower(): value for key, value in scope["headers"]}
        offered = headers.get("x-request-id", b"").decode("latin-1")
        request_id = offered if _SAFE_REQUEST_ID.match(offered) else uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        tag_request(request_id)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLargeError
            return message

        try:
            declared = int(headers.get("content-length", b"0") or 0)
        except ValueError:
            declared = 0
        self.metrics.in_progress.inc()
        try:
            with bind_request_id(request_id):
                if declared > self.max_body_bytes:
                    raise _BodyTooLargeError
                await self.app(scope, counted_receive, send_with_id)
        except _BodyTooLargeError:
            if response_started:
                raise
            await self._too_large(send_with_id, scope["path"])
        finally:
            self.metrics.in_progress.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.observe(route, scope["method"], status, elapsed)
            principal = state.get("principal", "-")
            access_log.info(
                '%s "%s %s" %d %.1fms principal=%s request_id=%s',
                _client(scope),
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
                principal,
                request_id,
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                    "principal": principal,
                },
            )

    async def _too_large(self, send: Send, path: str) -> None:
        cause = f"the limit is {self.max_body_bytes} bytes"
        shaped = shaped_body(
            shape_for(path), 413, "Request body too large", cause, "request_too_large"
        )
        body = json.dumps(shaped).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"
