"""The spans no instrumentation can make, through the OpenTelemetry API.

When tracing is off (no SDK installed) each of these is one check and a shared do-nothing
context: no span object, no context change. Attributes are names, outcomes and numbers, never a
token, key or secret: callers pass only what is listed here.

| span | where | attributes |
|---|---|---|
| ``entra.token`` | every ``TokenManager.token()`` | ``entra.identity``, ``entra.token.source`` (``cache`` or ``fetch``) |
| ``entra.token.fetch`` | each token request to Entra ID | ``entra.identity``, ``entra.credential``, ``entra.outcome``, ``entra.token.expires_in_s`` |
| ``llama_stack.<operation>`` | the holder's Llama Stack call | ``llama_stack.mode``, ``llama_stack.backend``, ``gen_ai.request.model``; ``llama_entra.azure.deployment`` (the base URL of the resource that served it) for a model on several resources |
| ``azure.unauthorized_retry`` | Azure answered 401: new token, one retry | ``llama_entra.retry.reason`` |
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from llama_entra.errors import LlamaEntraError

__all__ = [
    "Span",
    "failed",
    "safe_description",
    "span",
    "started_span",
    "tag_deployment",
    "tag_request",
    "use",
]

_tracer = trace.get_tracer("llama_entra")

REQUEST_ID = "llama_entra.request_id"
DEPLOYMENT = "llama_entra.azure.deployment"


def tag_request(request_id: str) -> None:
    """Put the request id (the one in the logs and ``X-Request-ID``) on the server span."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attribute(REQUEST_ID, request_id)


def tag_deployment(base_url: str) -> None:
    """Name the Azure OpenAI resource a call was sent to on the current span (the last one
    tried is the one that served it)."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attribute(DEPLOYMENT, base_url)


class _Off(AbstractContextManager[Span]):
    """The span of a process without tracing: nothing to start, record or end."""

    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(self, *exc_info: object) -> None:
        return None


_OFF = _Off()


def _tracing_off() -> bool:
    """No SDK installed (``start_tracing`` never ran): the API's proxy is still in place."""
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> AbstractContextManager[Span]:
    """A child span of the current one for the block; an exception marks it failed.

    The exception is not recorded as an event (its message could quote what a library sent);
    the status names its type, or its cause for llama-entra's own errors, which hold no secret.
    With tracing off this is a shared do-nothing context (not even a no-op span).
    """
    if _tracing_off():
        return _OFF
    return _recorded(name, attributes)


@contextmanager
def _recorded(name: str, attributes: Mapping[str, AttributeValue] | None) -> Iterator[Span]:
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
    if _tracing_off():
        return INVALID_SPAN
    return _tracer.start_span(name, attributes=attributes)


def use(current: Span) -> AbstractContextManager[Span]:
    """Make ``current`` the parent of spans started in the block, without ending it."""
    if not current.is_recording():
        return _OFF
    return _used(current)


@contextmanager
def _used(current: Span) -> Iterator[Span]:
    with trace.use_span(
        current, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ) as inner:
        yield inner


def failed(current: Span, description: str) -> None:
    """Mark ``current`` failed with ``description`` (an error's safe cause, never a secret)."""
    current.set_status(Status(StatusCode.ERROR, description))
