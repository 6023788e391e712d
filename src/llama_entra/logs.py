"""Logging set-up for the commands: plain text or one JSON object per line.

Every record logged while a request is handled carries that request's id (``request_id``,
the value of its ``X-Request-ID`` response header), so all lines of one request can be found
together; the middleware sets it with ``bind_request_id``. With tracing on, records logged
inside a span also carry its ``trace_id`` and ``span_id`` (``llama_entra.telemetry.logcontext``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

__all__ = [
    "JsonFormatter",
    "RequestIdFilter",
    "TextFormatter",
    "bind_request_id",
    "configure_logging",
    "preserved_logging",
]

_request_id: ContextVar[str] = ContextVar("request_id", default="-")


@contextmanager
def bind_request_id(request_id: str) -> Iterator[None]:
    """Records logged inside the block (and tasks it starts) carry ``request_id``."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` ("-" outside a request); drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """A plain line; ``trace_id=...`` at its end when the record has one (tracing on)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        trace_id = getattr(record, "trace_id", None)
        return f"{line} trace_id={trace_id}" if trace_id else line


def configure_logging(level: str, log_format: Literal["text", "json"] = "text") -> None:
    """Route every logger to stderr at ``level`` in the chosen format."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The clients log request headers at debug level, the provider data (a token) included.
    quiet = ("llama_stack_client", "ogx_client")
    for noisy in ("httpx", "httpcore", "azure.core.pipeline.policies.http_logging_policy", *quiet):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@contextmanager
def preserved_logging() -> Iterator[None]:
    """Undo what a library does to the root logger and existing loggers' levels.

    Llama Stack's library client reconfigures logging process-wide when it starts (root
    handlers replaced, other loggers set to WARNING); the service keeps its own set-up.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, logger in logging.root.manager.loggerDict.items():
            if isinstance(logger, logging.Logger) and name in levels:
                logger.setLevel(levels[name])
