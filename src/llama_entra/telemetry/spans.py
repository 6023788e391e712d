"""The spans no instrumentation can make, through the OpenTelemetry API.

When tracing is off the API's tracer is a no-op (no SDK is installed), so these cost a
context-variable set and reset per span. Attributes are names, outcomes and numbers, never a
token, key or secret: callers pass only what is listed here.

| span | where | attributes |
|---|---|---|
| ``entra.token`` | every ``TokenManager.token()`` | ``entra.identity``, ``entra.token.source`` (``cache`` or ``fetch``) |
| ``entra.token.fetch`` | each token request to Entra ID | ``entra.identity``, ``entra.credential``, ``entra.outcome``, ``entra.token.expires_in_s`` |
| ``llama_stack.<operation>`` | the holder's Llama Stack call | ``llama_stack.mode``, ``llama_stack.backend``, ``gen_ai.request.model`` |
| ``azure.unauthorized_retry`` | Azure answered 401: new token, one retry | ``llama_entra.retry.reason`` |
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from llama_entra.errors import LlamaEntraError

__all__ = ["Span", "failed", "safe_description", "span", "started_span", "tag_request", "use"]

_tracer = trace.get_tracer("llama_entra")

REQUEST_ID = "llama_entra.request_id"


def tag_request(request_id: str) -> None:
    """Put the request id (the one in the logs and ``X-Request-ID``) on the server span."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attribute(REQUEST_ID, request_id)


@contextmanager
def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[Span]:
    """A child span of the current one for the block; an exception marks it failed.

    The exception is not recorded as an event (its message could quote what a library sent);
    the status names its type, or its cause for llama-entra's own errors, which hold no secret.
    """
    with _tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as exc:
            failed(current, safe_description(exc))
            raise


def safe_description(exc: BaseException) -> str:
    """What a span may say about ``exc``: llama-entra's message, else only the type's name."""
    if isinstance(exc, LlamaEntraError):
        return str(exc)
    return type(exc).__name__


def started_span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Span:
    """A child span of the current one that the caller ends (spans across an async generator)."""
    return _tracer.start_span(name, attributes=attributes)


@contextmanager
def use(current: Span) -> Iterator[Span]:
    """Make ``current`` the parent of spans started in the block, without ending it."""
    with trace.use_span(
        current, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ) as inner:
        yield inner


def failed(current: Span, description: str) -> None:
    """Mark ``current`` failed with ``description`` (an error's safe cause, never a secret)."""
    current.set_status(Status(StatusCode.ERROR, description))
