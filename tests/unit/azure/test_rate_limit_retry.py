"""Unit: the one retry policy for Azure's 429 (waits, limits, what is never retried)."""

from __future__ import annotations

import asyncio

import pytest

from llama_entra.azure import RateLimitRetry
from llama_entra.config import AzureRetryPolicy
from llama_entra.errors import AzureThrottledError, UpstreamError


class Azure:
    """Answers 429 with ``waits`` in turn, then "ok"; records the calls and the sleeps."""

    def __init__(self, *waits: int | None, final: bool = False) -> None:
        self.waits = list(waits)
        self.final = final
        self.calls = 0
        self.slept: list[float] = []

    async def call(self) -> str:
        self.calls += 1
        if self.waits:
            wait = self.waits.pop(0)
            raise AzureThrottledError("throttled", retry_after=wait, final=self.final)
        return "ok"

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _run(azure: Azure, **policy: float) -> str:
    retry = RateLimitRetry(AzureRetryPolicy.model_validate(policy), sleep=azure.sleep)
    return asyncio.run(retry.run(azure.call))


def test_azures_wait_is_slept_and_the_call_made_again() -> None:
    azure = Azure(3, 2)
    assert _run(azure) == "ok"
    assert azure.calls == 3
    assert azure.slept == [3, 2]


def test_no_more_than_max_retries_more_calls() -> None:
    azure = Azure(1, 1, 1, 1)
    with pytest.raises(AzureThrottledError) as caught:
        _run(azure, max_retries=2)
    assert azure.calls == 3
    assert caught.value.final  # nobody above retries it again


def test_a_wait_that_does_not_fit_the_budget_is_not_slept_at_all() -> None:
    azure = Azure(4, 7)
    with pytest.raises(AzureThrottledError) as caught:
        _run(azure, max_wait_seconds=10)
    assert azure.slept == [4]  # 4 + 7 > 10: the second wait goes to the caller
    assert caught.value.retry_after == 7
    assert azure.calls == 2


def test_a_429_without_a_wait_or_already_final_is_passed_on_at_once() -> None:
    for azure in (Azure(None), Azure(1, final=True)):
        with pytest.raises(AzureThrottledError):
            _run(azure)
        assert azure.calls == 1
        assert azure.slept == []


def test_zero_retries_passes_every_429_on() -> None:
    azure = Azure(1)
    with pytest.raises(AzureThrottledError):
        _run(azure, max_retries=0)
    assert azure.calls == 1


def test_other_errors_are_never_retried() -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise UpstreamError("Azure answered 503", status=503)

    retry = RateLimitRetry(AzureRetryPolicy())
    with pytest.raises(UpstreamError):
        asyncio.run(retry.run(failing))
    assert calls == 1
    assert retry.retries == 0
