"""Unit: one model on several Azure OpenAI resources (order, cool-downs, failover)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from llama_entra.azure import DeploymentPool
from llama_entra.errors import AzureThrottledError, AzureUnreachableError, UpstreamError

A, B, C = "https://a/openai/v1", "https://b/openai/v1", "https://c/openai/v1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Azure:
    """Each resource answers what ``answers`` says (default: its own name)."""

    def __init__(self, **answers: BaseException) -> None:
        self.answers = answers
        self.sent: list[str] = []

    async def send(self, base_url: str) -> str:
        self.sent.append(base_url)
        name = base_url.split("/")[2]
        if name in self.answers:
            raise self.answers[name]
        return name


def _call(pool: DeploymentPool, azure: Azure) -> str:
    return asyncio.run(pool.call(azure.send))


def test_priority_moves_a_throttled_call_and_returns_when_the_wait_is_over() -> None:
    clock = Clock()
    pool = DeploymentPool([A, B], clock=clock)
    throttled = AzureThrottledError("busy", retry_after=3, wait=2.5)
    assert _call(pool, Azure(a=throttled)) == "b"
    clock.now += 2.4
    azure = Azure()
    assert _call(pool, azure) == "b"  # A still cools down: not even tried
    assert azure.sent == [B]
    clock.now += 0.2
    assert _call(pool, azure) == "a"  # exactly Azure's wait, then back to the first
    assert pool.deployments[0].throttled == 1
    assert pool.deployments[0].failovers == 1


def test_round_robin_spreads_calls_evenly() -> None:
    pool = DeploymentPool([A, B, C], "round_robin", clock=Clock())
    served = Counter(_call(pool, Azure()) for _ in range(30))
    assert served == {"a": 10, "b": 10, "c": 10}


def test_refused_connections_and_503_cool_down_with_a_capped_backoff() -> None:
    clock = Clock()
    pool = DeploymentPool([A, B], clock=clock)
    waits = []
    for _ in range(8):
        assert _call(pool, Azure(a=AzureUnreachableError())) == "b"
        waits.append(round(pool.deployments[0].cooling_until - clock.now, 3))
        clock.now = pool.deployments[0].cooling_until
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]
    assert _call(pool, Azure()) == "a"
    assert pool.deployments[0].failures_in_a_row == 0  # a success resets the backoff
    assert _call(pool, Azure(a=UpstreamError("Service Unavailable", status=503))) == "b"


def test_every_resource_cooling_is_a_429_with_the_soonest_recovery() -> None:
    clock = Clock()
    pool = DeploymentPool([A, B], clock=clock)
    azure = Azure(
        a=AzureThrottledError("busy", retry_after=30), b=AzureThrottledError("busy", retry_after=7)
    )
    with pytest.raises(AzureThrottledError) as caught:
        _call(pool, azure)
    assert caught.value.retry_after == 7
    assert caught.value.headers["Retry-After"] == "7"
    assert not caught.value.final  # the retry policy may still wait for it
    clock.now += 3
    with pytest.raises(AzureThrottledError) as again:
        _call(pool, Azure())
    assert again.value.retry_after == 4  # nobody was called


@pytest.mark.parametrize(
    "error",
    [
        UpstreamError("Azure OpenAI did not answer in time", status=504),  # may have been billed
        UpstreamError("Azure OpenAI is unreachable", status=502),  # dropped after sending
        UpstreamError("bad request", status=400),
    ],
)
def test_an_outcome_that_may_have_been_served_is_never_sent_elsewhere(error: Exception) -> None:
    pool = DeploymentPool([A, B], clock=Clock())
    azure = Azure(a=error)
    with pytest.raises(UpstreamError):
        _call(pool, azure)
    assert azure.sent == [A]


def test_without_failover_the_refusal_goes_to_the_caller_and_still_cools_down() -> None:
    clock = Clock()
    pool = DeploymentPool([A, B], clock=clock)
    azure = Azure(a=AzureThrottledError("busy", retry_after=5))
    with pytest.raises(AzureThrottledError) as caught:
        asyncio.run(pool.call(azure.send, failover=False))
    assert caught.value.retry_after == 5  # Azure's own answer, not the pool's
    assert azure.sent == [A]
    assert asyncio.run(pool.call(azure.send, failover=False)) == "b"  # A cools down
