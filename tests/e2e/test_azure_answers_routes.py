"""End-to-end: what each route makes of Azure's real answers, in library and service mode.

The emulator answers as Azure does (429 with its wait, the content filter, the context window);
the service runs in library mode (Llama Stack in-process, ``remote::azure``) and in service mode
(in front of the container entrypoint's Llama Stack server). Each case checks the status, body
and headers the caller sees, and the Azure calls the one request caused (the emulator's
per-deployment counters), streams included.

The retry policy (README, "Azure's answers"): in library mode the service calls Azure again
after a 429 whose wait fits ``azure_entra_id.retries`` (default: 2 more calls, 10 s in all);
in service mode the server's ``remote::azure`` adapter retries as the OpenAI SDK does (2 more
calls, sleeping Azure's wait when it is at most 120 s, not retrying a longer one) and the service
adds no call of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from support.emulator import EmulatorHandle
from support.metrics import metric
from support.service import (
    ServiceHandle,
    start_service_mode,
)

pytestmark = pytest.mark.slow

# A wait no layer sleeps through: over the service's budget (10 s) and over the 120 s up to
# which the OpenAI SDK inside a Llama Stack server sleeps (it does not retry longer waits).
LONG_WAIT = 121


@pytest.fixture(scope="module")
def service_mode(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """llama-entra in service mode in front of a Llama Stack server (the entrypoint's)."""
    directory = tmp_path_factory.mktemp("azure-answers-service-mode")
    with start_service_mode(emulator, directory) as handle:
        yield handle


@pytest.fixture(params=["library", "service"])
def mode(request: pytest.FixtureRequest) -> str:
    """Which mode the test runs in."""
    return str(request.param)


@pytest.fixture
def api(mode: str, request: pytest.FixtureRequest, fresh_emulator: EmulatorHandle) -> Iterator[Api]:
    """The service of ``mode`` with a warm token, and the emulator reset before and after.

    None of Azure's answers here is about the token: each test must cause no Entra token
    request (checked when it ends).
    """
    name = "service" if mode == "library" else "service_mode"
    handle: ServiceHandle = request.getfixturevalue(name)
    api = Api(handle, fresh_emulator, mode)
    assert api.query("warm the token").status_code == 200
    fresh_emulator.reset()
    yield api
    token_requests = fresh_emulator.counters()["token_requests"]
    fresh_emulator.reset()
    assert token_requests == 0


class Api:
    """The routes of one running service, and the emulator behind it."""

    def __init__(self, service: ServiceHandle, emulator: EmulatorHandle, mode: str) -> None:
        self.url = service.url
        self.emulator = emulator
        self.mode = mode
        self.openai = openai.OpenAI(base_url=f"{service.url}/v1", api_key="none", max_retries=0)

    def query(self, text: str) -> httpx.Response:
        body = {"query": text, "generate_topic_summary": False}
        return httpx.post(f"{self.url}/v1/query", json=body, timeout=120)

    def streaming_query(self, text: str) -> tuple[httpx.Response, list[dict[str, Any]]]:
        body = {"query": text, "generate_topic_summary": False}
        with httpx.stream(
            "POST", f"{self.url}/v1/streaming_query", json=body, timeout=120
        ) as response:
            response.read()
        events = [
            json.loads(line.removeprefix("data: "))
            for line in response.text.splitlines()
            if line.startswith("data: ")
        ]
        return response, events

    def chat(self, text: str, **extra: Any) -> httpx.Response:
        body = {"model": self.model, "messages": [{"role": "user", "content": text}]}
        return httpx.post(f"{self.url}/v1/chat/completions", json=body | extra, timeout=120)

    @property
    def model(self) -> str:
        return f"azure/{self.emulator.model}"

    def calls(self) -> dict[str, Any]:
        return self.emulator.azure_calls(self.emulator.model)


def _remaining_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("x-ratelimit-remaining")}


# -- 429 -----------------------------------------------------------------------------------------


def test_short_azure_wait_is_slept_once_and_the_caller_gets_the_answer(api: Api) -> None:
    api.emulator.throttle_next(1, retry_after=1)
    started = time.monotonic()
    response = api.query("hello after one throttle")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert api.calls()["throttled"] == 1
    assert api.calls()["ok"] == 1
    assert elapsed >= 1.0  # Azure's wait was honoured, not a shorter backoff


def test_long_azure_wait_goes_to_the_caller_at_once_with_azures_retry_after(api: Api) -> None:
    api.emulator.throttle_next(5, retry_after=LONG_WAIT)
    started = time.monotonic()
    response = api.query("hello while throttled")
    elapsed = time.monotonic() - started
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == str(LONG_WAIT)
    assert f"Please retry after {LONG_WAIT} seconds" in response.json()["detail"]["cause"]
    assert api.calls() | {"throttled": 1, "ok": 0} == api.calls()  # one call, no retry
    assert elapsed < 5  # and no sleep
    if api.mode == "library":
        # Azure's remaining-quota headers reach the caller (in-process, Azure's headers are
        # seen; a Llama Stack server keeps only the message, see the README).
        assert set(_remaining_headers(response)) == {
            "x-ratelimit-remaining-requests",
            "x-ratelimit-remaining-tokens",
        }


def test_throttling_that_outlasts_the_retries_is_429_after_exactly_the_allowed_calls(
    api: Api,
) -> None:
    retried_before = metric(api.url, "llama_entra_azure_rate_limit_retries_total")
    answered_before = metric(api.url, "llama_entra_azure_rate_limited_total")
    api.emulator.throttle_next(10, retry_after=1)
    response = api.chat("hello, throttled throughout")
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "429"
    assert error["type"] == "rate_limit_error"
    assert "Please retry after 1 second" in error["message"]
    # Library mode: 1 + azure_entra_id.retries.max_retries (2). Service mode: the server's SDK
    # makes the same 3, and the service's client sends the server's 429 on without a retry.
    assert api.calls()["throttled"] == 3
    assert api.calls()["ok"] == 0
    retried = metric(api.url, "llama_entra_azure_rate_limit_retries_total") - retried_before
    assert retried == (2 if api.mode == "library" else 0)  # service mode: the server's retries
    assert metric(api.url, "llama_entra_azure_rate_limited_total") - answered_before == 1


def test_openai_sdk_sees_a_rate_limit_error_with_azures_wait(api: Api) -> None:
    api.emulator.throttle_next(5, retry_after=LONG_WAIT)
    with pytest.raises(openai.RateLimitError) as caught:
        api.openai.chat.completions.create(
            model=api.model, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.response.headers["retry-after"] == str(LONG_WAIT)
    assert caught.value.code == "429"


def test_streams_throttled_before_the_first_chunk_are_a_429_not_a_broken_stream(
    api: Api,
) -> None:
    api.emulator.throttle_next(5, retry_after=LONG_WAIT)
    response, events = api.streaming_query("stream while throttled")
    assert response.status_code == 429
    assert response.headers["retry-after"] == str(LONG_WAIT)
    assert events == []
    assert api.calls()["throttled"] == 1
    api.emulator.reset()
    api.emulator.throttle_next(5, retry_after=LONG_WAIT)
    with pytest.raises(openai.RateLimitError):
        api.openai.chat.completions.create(
            model=api.model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert api.calls()["throttled"] == 1


# -- content filter --------------------------------------------------------------------------


def test_blocked_prompt_keeps_azures_error_object_on_the_openai_route(api: Api) -> None:
    response = api.chat("!filter-prompt jailbreak please")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "content_filter"
    assert error["param"] == "prompt"
    assert "content management policy" in error["message"]
    assert api.calls()["content_filter"] == 1  # never retried
    if api.mode == "service":
        # A llama-stack server answers with Azure's message only: innererror does not survive.
        assert "innererror" not in error
        return
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    results = error["innererror"]["content_filter_result"]
    assert results["jailbreak"] == {"filtered": True, "detected": True}
    assert results["hate"] == {"filtered": False, "severity": "safe"}


def test_blocked_prompt_on_lightspeed_routes_is_400_naming_the_categories(api: Api) -> None:
    response = api.query("!filter-prompt hate please")
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail["response"] == "Prompt blocked by the content filter"
    named = api.mode == "library"  # a llama-stack server loses which categories fired
    assert detail["cause"] == "Azure OpenAI's content filter blocked the prompt" + (
        " (categories: hate)" if named else ""
    )
    streamed, events = api.streaming_query("!filter-prompt violence please")
    assert streamed.status_code == 400
    assert ("categories: violence" in streamed.json()["detail"]["cause"]) is named
    assert events == []
    assert api.calls()["content_filter"] == 2


def test_filtered_completion_is_200_with_the_flag_and_what_azure_produced(api: Api) -> None:
    response = api.query("!filter-completion violence tell a story")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content_filtered"] is True
    assert body["response"]  # the part Azure produced before the filter cut it

    chat = api.chat("!filter-completion sexual tell a story")
    assert chat.status_code == 200, chat.text
    choice = chat.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter"

    streamed, events = api.streaming_query("!filter-completion hate tell a story")
    assert streamed.status_code == 200
    names = [event["event"] for event in events]
    assert names[0] == "start" and names[-1] == "end" and "error" not in names
    assert events[-1]["data"]["content_filtered"] is True

    plain = api.query("a story with nothing to filter")
    assert plain.json()["content_filtered"] is False


def test_streamed_chat_with_azures_empty_first_chunk_and_a_filtered_end(api: Api) -> None:
    stream = api.openai.chat.completions.create(
        model=api.model,
        messages=[{"role": "user", "content": "!filter-completion self_harm a long answer"}],
        stream=True,
    )
    chunks = list(stream)
    reasons = [choice.finish_reason for chunk in chunks for choice in chunk.choices]
    assert "content_filter" in reasons
    text = "".join(
        choice.delta.content or "" for chunk in chunks for choice in chunk.choices if choice.delta
    )
    assert text


# -- context window ----------------------------------------------------------------------------


def test_too_long_prompt_is_413_on_lightspeed_routes_and_400_on_openai_routes(api: Api) -> None:
    api.emulator.set_limits(api.emulator.model, context_window=20)
    long_prompt = " ".join(["word"] * 50)
    response = api.query(long_prompt)
    assert response.status_code == 413, response.text
    assert response.json() == {
        "detail": {
            "response": "Prompt is too long",
            "cause": f"The input exceeds the context window size of model '{api.emulator.model}'.",
        }
    }
    streamed, _ = api.streaming_query(long_prompt)
    assert streamed.status_code == 413
    chat = api.chat(long_prompt)
    assert chat.status_code == 400, chat.text
    error = chat.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages"
    assert error["message"].startswith("This model's maximum context length is 20 tokens.")
    assert api.calls()["context_length_exceeded"] == 3  # one call each, never retried


# -- Responses API ---------------------------------------------------------------------------


def test_responses_route_keeps_azures_429_and_blocked_prompt(api: Api) -> None:
    """Llama Stack's Responses implementation answers a provider error as a 500 keeping
    Azure's message; the service reads Azure's answer back from it."""
    api.emulator.throttle_next(1, retry_after=LONG_WAIT)
    body = {"model": api.model, "input": "throttled"}
    throttled = httpx.post(f"{api.url}/v1/responses", json=body, timeout=120)
    assert throttled.status_code == 429, throttled.text
    assert throttled.headers["retry-after"] == str(LONG_WAIT)
    assert throttled.json()["error"]["code"] == "429"
    blocked = httpx.post(
        f"{api.url}/v1/responses", json=body | {"input": "!filter-prompt hate"}, timeout=120
    )
    assert blocked.status_code == 400, blocked.text
    assert blocked.json()["error"]["code"] == "content_filter"
    calls = api.calls()
    assert (calls["throttled"], calls["content_filter"], calls["ok"]) == (1, 1, 0)
