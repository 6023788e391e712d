"""Unit: the emulator's rate-limit window and token estimate, with the clock passed in."""

from __future__ import annotations

import pytest

from llama_entra.emulator.limits import (
    DEFAULT_COMPLETION_RESERVATION,
    NOMINAL_REQUESTS,
    NOMINAL_TOKENS,
    WINDOW_SECONDS,
    CallCost,
    DeploymentLimits,
    Throttle,
    UsageWindow,
    estimate_tokens,
)


def test_estimate_tokens_counts_words_and_at_least_one_per_message() -> None:
    assert estimate_tokens(["one two three", "", "  ", "four"]) == 3 + 1 + 1 + 1
    assert estimate_tokens([]) == 0


def test_call_cost_reserves_default_output_for_rate_but_not_for_context() -> None:
    unbounded = CallCost(prompt_tokens=10)
    assert unbounded.rate_tokens == 10 + DEFAULT_COMPLETION_RESERVATION
    assert unbounded.completion_tokens == 0
    bounded = CallCost(prompt_tokens=10, max_tokens=5)
    assert (bounded.rate_tokens, bounded.completion_tokens) == (15, 5)
    assert bounded.exceeds(14) and not bounded.exceeds(15)


def test_window_rpm_refuses_the_extra_call_until_the_oldest_expires() -> None:
    window, limits = UsageWindow(), DeploymentLimits(rpm=2)
    assert window.admit(100.0, 1, limits) is None
    assert window.admit(110.0, 1, limits) is None
    refused = window.admit(130.0, 1, limits)
    assert refused == Throttle("call", 100.0 + WINDOW_SECONDS - 130.0)
    assert window.usage(130.0) == (2, 2)  # the refused call used no quota
    assert window.admit(160.0, 1, limits) is None  # the first call left the window at 160
    assert window.usage(160.0) == (2, 2)


def test_window_tpm_waits_until_enough_tokens_leave() -> None:
    window, limits = UsageWindow(), DeploymentLimits(tpm=100)
    assert window.admit(0.0, 30, limits) is None
    assert window.admit(10.0, 30, limits) is None
    assert window.admit(20.0, 30, limits) is None
    # 90 used; a call of 50 needs 40 freed: the first two calls (60 tokens) must leave.
    refused = window.admit(30.0, 50, limits)
    assert refused is not None and refused.limit == "token"
    assert refused.retry_after == pytest.approx(10.0 + WINDOW_SECONDS - 30.0)
    assert window.admit(69.9, 50, limits) is not None
    assert window.admit(70.0, 50, limits) is None
    assert window.usage(70.0) == (2, 80)


def test_window_call_larger_than_the_limit_waits_a_whole_window() -> None:
    window = UsageWindow()
    refused = window.admit(0.0, 500, DeploymentLimits(tpm=100))
    assert refused == Throttle("token", WINDOW_SECONDS)
    assert window.admit(0.0, 1, DeploymentLimits(rpm=0)) == Throttle("call", WINDOW_SECONDS)


def test_window_remaining_counts_down_from_the_limit_or_a_nominal_quota() -> None:
    window = UsageWindow()
    limits = DeploymentLimits(rpm=5, tpm=1000)
    window.admit(0.0, 120, limits)
    assert window.remaining(1.0, limits) == (4, 880)
    assert window.remaining(1.0, DeploymentLimits()) == (NOMINAL_REQUESTS - 1, NOMINAL_TOKENS - 120)
    assert window.remaining(WINDOW_SECONDS, limits) == (5, 1000)


@pytest.mark.parametrize(
    ("wait", "seconds", "milliseconds"),
    [(0.0, 1, 1), (0.2, 1, 200), (1.0, 1, 1000), (29.0001, 30, 29001), (120.0, 120, 120000)],
)
def test_throttle_retry_after_rounds_up(wait: float, seconds: int, milliseconds: int) -> None:
    throttle = Throttle("token", wait)
    assert (throttle.retry_after_seconds, throttle.retry_after_ms) == (seconds, milliseconds)
