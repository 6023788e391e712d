"""End-to-end: token quotas on a real library-mode service (the installed backend).

A real ``llama-entra serve`` with ``api_key`` callers and ``quota_handlers`` limiters, the
emulator for Entra ID and Azure OpenAI, real httpx and openai clients. Quotas are charged with
the usage Azure reports (the emulator's), in answers and at the end of streams, and show in
``available_quotas``; a used-up caller is refused 429 on every route before Azure is called
(the emulator's completion counter stays put), in lightspeed-stack's body on its routes and
OpenAI's on the OpenAI-compatible ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from support.emulator import EmulatorHandle
from support.metrics import metric
from support.quotas import KEYS, answered, headers, query, quota_config, spent
from support.service import ServiceHandle, service_config, stack_environment, start_service

pytestmark = pytest.mark.slow

USER_QUOTA = 400
CLUSTER_QUOTA = 1_000_000


@pytest.fixture(scope="module")
def quota_service(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    directory = tmp_path_factory.mktemp("quota-service")
    path = service_config(directory, emulator, extra=quota_config(USER_QUOTA, CLUSTER_QUOTA))
    with start_service(path, stack_environment(emulator, directory / "state")) as handle:
        yield handle


def stream_events(service: ServiceHandle, user: str, text: str) -> list[dict[str, Any]]:
    body = {"query": text, "generate_topic_summary": False}
    response = httpx.post(
        f"{service.url}/v1/streaming_query", json=body, headers=headers(user), timeout=60
    )
    assert response.status_code == 200, response.text
    return [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


def chat_client(service: ServiceHandle, user: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key=KEYS[user], max_retries=0)


def test_query_available_quotas_are_the_limits_less_azure_usage(
    quota_service: ServiceHandle,
) -> None:
    first = answered(quota_service, "alice", "one two three")
    assert set(first["available_quotas"]) == {"user_daily", "cluster_daily"}
    assert spent(first) > 0
    assert first["available_quotas"]["user_daily"] == USER_QUOTA - spent(first)
    second = answered(quota_service, "alice", "four five")
    assert second["available_quotas"]["user_daily"] == USER_QUOTA - spent(first) - spent(second)
    cluster_drop = (
        first["available_quotas"]["cluster_daily"] - second["available_quotas"]["cluster_daily"]
    )
    assert cluster_drop == spent(second)
    # another caller has its own user count, and the same cluster count
    other = answered(quota_service, "bob", "six")
    assert other["available_quotas"]["user_daily"] == USER_QUOTA - spent(other)
    assert other["available_quotas"]["cluster_daily"] == (
        second["available_quotas"]["cluster_daily"] - spent(other)
    )


def test_streaming_query_end_event_counts_the_usage_azure_reports_at_the_end(
    quota_service: ServiceHandle,
) -> None:
    before = answered(quota_service, "carol", "seven")["available_quotas"]["user_daily"]
    events = stream_events(quota_service, "carol", "eight nine ten")
    end = events[-1]
    assert end["event"] == "end"
    tokens = int(end["data"]["input_tokens"]) + int(end["data"]["output_tokens"])
    assert tokens > 0
    assert end["available_quotas"]["user_daily"] == before - tokens
    after = answered(quota_service, "carol", "eleven")
    assert after["available_quotas"]["user_daily"] == before - tokens - spent(after)


def test_chat_completion_streams_are_counted_and_keep_the_callers_own_shape(
    quota_service: ServiceHandle, emulator: EmulatorHandle
) -> None:
    messages = [{"role": "user", "content": "twelve thirteen"}]
    with chat_client(quota_service, "dave") as client:
        plain = client.chat.completions.create(model=emulator.model, messages=messages)
        assert plain.usage is not None
        tokens = plain.usage.prompt_tokens + plain.usage.completion_tokens
        start = answered(quota_service, "dave", "x")["available_quotas"]["user_daily"]
        # no usage asked for: none sent, yet the usage Azure reported is counted
        quiet = list(
            client.chat.completions.create(model=emulator.model, messages=messages, stream=True)
        )
        assert quiet and all(chunk.usage is None for chunk in quiet)
        # usage asked for: the caller gets its usage chunk, as from Azure
        loud = list(
            client.chat.completions.create(
                model=emulator.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert loud[-1].choices == [] and loud[-1].usage is not None
        assert loud[-1].usage.total_tokens == tokens
        assert len(loud) == len(quiet) + 1
    end = answered(quota_service, "dave", "x")
    assert end["available_quotas"]["user_daily"] == start - 2 * tokens - spent(end)
    consumed = metric(quota_service.url, "llama_entra_quota_tokens_consumed_total")
    assert consumed >= 3 * tokens + spent(end)


def test_responses_plain_and_streamed_are_counted_with_their_usage(
    quota_service: ServiceHandle, emulator: EmulatorHandle
) -> None:
    with chat_client(quota_service, "erin") as client:
        start = answered(quota_service, "erin", "x")["available_quotas"]["user_daily"]
        plain = client.responses.create(model=emulator.model, input="fourteen fifteen")
        assert plain.usage is not None
        tokens = plain.usage.input_tokens + plain.usage.output_tokens
        assert tokens > 0
        streamed = [
            event
            for event in client.responses.create(
                model=emulator.model, input="fourteen fifteen", stream=True
            )
            if event.type == "response.completed"
        ]
        assert len(streamed) == 1 and streamed[0].response.usage is not None
        streamed_tokens = (
            streamed[0].response.usage.input_tokens + streamed[0].response.usage.output_tokens
        )
    end = answered(quota_service, "erin", "x")
    assert end["available_quotas"]["user_daily"] == start - tokens - streamed_tokens - spent(end)


def test_used_up_quota_is_refused_429_on_every_route_before_azure_is_called(
    quota_service: ServiceHandle, emulator: EmulatorHandle
) -> None:
    """The lightspeed body is lightspeed-stack's ``QuotaExceededResponse.from_exception``
    (src/models/responses.py) with the cause of its ``QuotaExceedError``
    (src/quota/quota_exceed_error.py): ``User <id> has no available tokens``, without the full
    stop the examples in responses.py show."""
    user = "bob"
    for _ in range(40):
        response = query(quota_service, user, "spend spend spend spend spend")
        if response.status_code == 429:
            break
        assert response.status_code == 200, response.text
    else:
        pytest.fail("the user quota was never used up")
    completions = emulator.counters()["completions"]
    assert response.json() == {
        "detail": {
            "response": "The quota has been exceeded",
            "cause": f"User {user} has no available tokens",
        }
    }
    assert 0 < int(response.headers["retry-after"]) <= 86400
    streamed = httpx.post(
        f"{quota_service.url}/v1/streaming_query",
        json={"query": "more"},
        headers=headers(user),
        timeout=60,
    )
    assert streamed.status_code == 429
    assert streamed.json() == response.json()
    messages = [{"role": "user", "content": "more"}]
    with chat_client(quota_service, user) as client:
        for stream in (False, True):
            with pytest.raises(openai.RateLimitError) as refused:
                client.chat.completions.create(
                    model=emulator.model, messages=messages, stream=stream
                )
            assert refused.value.status_code == 429
            assert refused.value.code == "insufficient_quota"
            assert refused.value.type == "insufficient_quota"
            assert refused.value.body == {
                "message": f"The quota has been exceeded: User {user} has no available tokens",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
                "param": None,
            }
        with pytest.raises(openai.RateLimitError):
            client.responses.create(model=emulator.model, input="more")
    assert emulator.counters()["completions"] == completions
    refused_count = metric(
        quota_service.url, "llama_entra_quota_refused_requests_total", limiter="user_daily"
    )
    assert refused_count >= 5
    # the others are still served
    assert answered(quota_service, "alice", "still here")["available_quotas"]["user_daily"] > 0
