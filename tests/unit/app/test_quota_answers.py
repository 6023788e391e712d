"""Unit tests: a used-up quota's 429 in both dialects, and what a metered stream relays."""

from __future__ import annotations

from typing import Any

from llama_entra.app.errors import openai_error_of, status_and_body
from llama_entra.app.usage import StreamUsage, ask_for_usage
from llama_entra.errors import QuotaExceededError


def test_quota_exceeded_is_lightspeeds_429_with_the_wait() -> None:
    error = QuotaExceededError("user_daily", "User alice has no available tokens", 3600)
    status, body, headers = status_and_body(error)
    assert status == 429
    assert body == {
        "detail": {
            "response": "The quota has been exceeded",
            "cause": "User alice has no available tokens",
        }
    }
    assert headers == {"Retry-After": "3600"}


def test_quota_exceeded_on_openai_routes_is_insufficient_quota() -> None:
    error = QuotaExceededError("cluster", "Cluster has no available tokens", 5)
    status, body, headers = openai_error_of(error)
    assert (status, headers) == (429, {"Retry-After": "5"})
    assert body == {
        "message": "The quota has been exceeded: Cluster has no available tokens",
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "param": None,
    }


def _usage_chunk() -> dict[str, Any]:
    return {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}


def test_stream_usage_hides_the_usage_the_caller_did_not_ask_for() -> None:
    params: dict[str, Any] = {"stream": True}
    usage = StreamUsage(None, "alice", caller_asked=ask_for_usage(params))  # type: ignore[arg-type]
    assert params["stream_options"] == {"include_usage": True}
    content = {"choices": [{"delta": {"content": "hi"}}], "usage": None}
    filtered = {"choices": [], "prompt_filter_results": []}
    assert usage.relay(content) is content
    assert usage.relay(filtered) is filtered
    assert usage.relay(_usage_chunk()) is None
    last = {"choices": [{"delta": {}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    assert usage.relay(last) == {"choices": [{"delta": {}}], "usage": None}
    assert usage.tokens == 2


def test_stream_usage_relays_what_the_caller_asked_for() -> None:
    params: dict[str, Any] = {"stream_options": {"include_usage": True}}
    usage = StreamUsage(None, "alice", caller_asked=ask_for_usage(params))  # type: ignore[arg-type]
    chunk = _usage_chunk()
    assert usage.relay(chunk) is chunk
    assert usage.tokens == 10


def test_ask_for_usage_leaves_a_malformed_stream_options_alone() -> None:
    params: dict[str, Any] = {"stream_options": "yes"}
    assert ask_for_usage(params) is True
    assert params == {"stream_options": "yes"}


def test_stream_usage_reads_a_responses_completed_event() -> None:
    usage = StreamUsage(None, "alice")  # type: ignore[arg-type]
    usage.event({"type": "response.output_text.delta", "delta": "hi"})
    assert usage.tokens == 0
    usage.event(
        {
            "type": "response.completed",
            "response": {"usage": {"input_tokens": 4, "output_tokens": 6}},
        }
    )
    assert usage.tokens == 10
