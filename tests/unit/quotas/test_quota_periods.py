"""Unit tests: quota periods are windows aligned to the clock in UTC, and limits move by them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llama_entra.config import QuotaLimiterConfig
from llama_entra.quotas import Count, Limiter, Period


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "moment", "start", "next_start"),
    [
        ("1 day", "2026-12-07T19:48:00", "2026-12-07T00:00:00", "2026-12-08T00:00:00"),
        ("2 hours", "2026-12-07T19:48:00", "2026-12-07T18:00:00", "2026-12-07T20:00:00"),
        ("15 minutes", "2026-12-07T19:48:00", "2026-12-07T19:45:00", "2026-12-07T20:00:00"),
        ("1 week", "2026-12-07T19:48:00", "2026-12-07T00:00:00", "2026-12-14T00:00:00"),
        ("1 week", "2026-12-13T23:59:59", "2026-12-07T00:00:00", "2026-12-14T00:00:00"),
        ("1 month", "2026-12-07T19:48:00", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("3 months", "2026-12-07T19:48:00", "2026-10-01T00:00:00", "2027-01-01T00:00:00"),
        ("1 year", "2026-12-07T19:48:00", "2026-01-01T00:00:00", "2027-01-01T00:00:00"),
    ],
)
def test_period_window_of_a_moment_starts_and_ends_on_the_clock(
    text: str, moment: str, start: str, next_start: str
) -> None:
    period = Period.parse(text)
    index = period.index(_at(moment))
    assert period.start(index) == _at(start)
    assert period.start(index + 1) == _at(next_start)
    assert period.index(_at(next_start)) == index + 1
    assert period.index(_at(next_start) - 0.001) == index


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1 day", (1, "day")),
        ("2 Hours", (2, "hour")),
        ("30 mins", (30, "minute")),
        ("month", (1, "month")),
        ("10 sec", (10, "second")),
        ("1 mon", (1, "month")),
    ],
)
def test_period_parse_accepts_postgresql_interval_words(text: str, parsed: tuple[int, str]) -> None:
    assert (Period.parse(text).count, Period.parse(text).unit) == parsed


@pytest.mark.parametrize("text", ["", "1 fortnight", "P1D", "1 day 2 hours", "0 days", "-1 day"])
def test_period_parse_refuses_what_it_cannot_count(text: str) -> None:
    with pytest.raises(ValueError, match="period"):
        Period.parse(text)


def _limiter(initial: int, increase: int, period: str = "1 day") -> Limiter:
    return Limiter.of(
        QuotaLimiterConfig(
            type="user_limiter",
            name="daily",
            initial_quota=initial,
            quota_increase=increase,
            period=period,
        )
    )


def test_limiter_new_count_starts_at_the_initial_quota_in_the_current_period() -> None:
    now = _at("2026-12-07T19:48:00")
    assert _limiter(100, 0).current(None, now) == Count(100, _at("2026-12-07T00:00:00"))


def test_limiter_count_is_unchanged_within_its_period() -> None:
    stored = Count(7, _at("2026-12-07T00:00:00"))
    assert _limiter(100, 0).current(stored, _at("2026-12-07T23:59:59")) is stored


def test_limiter_with_initial_quota_resets_when_a_period_turns_however_many_passed() -> None:
    stored = Count(-20, _at("2026-12-01T00:00:00"))
    today = _at("2026-12-07T00:00:00")
    assert _limiter(100, 0).current(stored, today + 5) == Count(100, today)
    # lightspeed-stack: both set -> reset to initial_quota + quota_increase
    assert _limiter(100, 10).current(stored, today + 5) == Count(110, today)


def test_limiter_without_initial_quota_adds_the_increase_once_per_period_passed() -> None:
    stored = Count(5, _at("2026-12-04T00:00:00"))
    today = _at("2026-12-07T00:00:00")
    assert _limiter(0, 50).current(stored, today + 1) == Count(155, today)


def test_limiter_stored_under_another_period_still_turns() -> None:
    # a count stored under "1 hour" and read under "1 day" the next day is reset
    stored = Count(3, _at("2026-12-06T13:00:00"))
    limiter = _limiter(100, 0, "1 day")
    assert limiter.current(stored, _at("2026-12-07T01:00:00")).available == 100


def test_limiter_seconds_left_count_to_the_end_of_the_period() -> None:
    limiter = _limiter(100, 0, "1 hour")
    assert limiter.seconds_left(_at("2026-12-07T19:48:00")) == 12 * 60
    assert limiter.seconds_left(_at("2026-12-07T19:59:59.5")) == 1


def test_limiter_causes_use_lightspeed_stack_wording() -> None:
    user = _limiter(1, 0)
    cluster = Limiter.of(
        QuotaLimiterConfig(type="cluster_limiter", name="all", initial_quota=1, period="1 day")
    )
    assert user.exceeded("alice") == "User alice has no available tokens"
    assert cluster.exceeded("") == "Cluster has no available tokens"
    assert cluster.subject("alice") == "" and user.subject("alice") == "alice"
