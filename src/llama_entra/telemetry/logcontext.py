"""The trace id on log records, so a log line leads to its trace and back.

Installed on the root handlers only while tracing is on. JSON lines get ``trace_id`` and
``span_id`` fields; text lines end with ``trace_id=...`` (see ``llama_entra.logs``).
"""

from __future__ import annotations

import logging

from opentelemetry import trace

__all__ = ["TraceContextFilter"]


class TraceContextFilter(logging.Filter):
    """Adds ``record.trace_id`` and ``record.span_id`` (hex) inside a span; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return True
