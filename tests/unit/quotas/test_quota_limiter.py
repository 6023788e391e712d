"""Unit tests: ``QuotaLimiter`` on the SQLite conversation index's file.

The check refuses a used-up quota with lightspeed-stack's cause and the wait until the period
turns; spending is atomic (concurrent spenders on separate connections, as the workers of one
service are, lose nothing); a period turns on the injected clock, once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from llama_entra.config import QuotaHandlersConfig
from llama_entra.conversations.index import SqliteConversationIndex
from llama_entra.errors import QuotaExceededError
from llama_entra.quotas import QuotaLimiter, SqliteQuotaStore, quota_store

DAY = 86400.0
NOON = 1_796_990_400.0  # 2026-12-11T12:00:00Z


class Clock:
    """A clock tests move."""

    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _config(*limiters: dict[str, Any]) -> QuotaHandlersConfig:
    return QuotaHandlersConfig.model_validate({"limiters": list(limiters)})


USER = {"type": "user_limiter", "name": "user_daily", "initial_quota": 100, "period": "1 day"}
CLUSTER = {"type": "cluster_limiter", "name": "cluster", "initial_quota": 250, "period": "1 day"}


@pytest.fixture
def index(tmp_path: Path) -> Any:
    index = SqliteConversationIndex(tmp_path / "conversations.sqlite3")
    yield index
    index.close()


async def test_quota_limiter_without_limiters_answers_empty_and_touches_nothing(
    index: SqliteConversationIndex,
) -> None:
    quotas = QuotaLimiter(_config(), quota_store(index))
    assert not quotas.enabled
    assert await quotas.check("alice") == {}
    assert await quotas.spend("alice", 10) == {}
    assert not index.path.exists()


async def test_quota_limiter_spends_from_user_and_cluster_counts(
    index: SqliteConversationIndex,
) -> None:
    quotas = QuotaLimiter(_config(USER, CLUSTER), quota_store(index), clock=Clock())
    assert await quotas.check("alice") == {"user_daily": 100, "cluster": 250}
    assert await quotas.spend("alice", 60) == {"user_daily": 40, "cluster": 190}
    assert await quotas.spend("bob", 30) == {"user_daily": 70, "cluster": 160}
    assert await quotas.check("alice") == {"user_daily": 40, "cluster": 160}
    assert quotas.tokens_spent == 90


async def test_quota_limiter_refuses_a_used_up_user_with_lightspeed_cause_and_the_wait(
    index: SqliteConversationIndex,
) -> None:
    clock = Clock()
    quotas = QuotaLimiter(_config(USER, CLUSTER), quota_store(index), clock=clock)
    # overspending (a request in flight) shows as 0, never below
    assert await quotas.spend("alice", 130) == {"user_daily": 0, "cluster": 120}
    with pytest.raises(QuotaExceededError) as refused:
        await quotas.check("alice")
    assert refused.value.cause == "User alice has no available tokens"
    assert refused.value.limiter == "user_daily"
    assert refused.value.retry_after == 12 * 3600  # noon to midnight UTC
    assert quotas.refused["user_daily"] == 1
    assert await quotas.check("bob") == {"user_daily": 100, "cluster": 120}


async def test_quota_limiter_cluster_count_refuses_everybody(
    index: SqliteConversationIndex,
) -> None:
    quotas = QuotaLimiter(_config(USER, CLUSTER), quota_store(index), clock=Clock())
    for user in ("a", "b", "c"):
        await quotas.spend(user, 90)
    with pytest.raises(QuotaExceededError, match=r"^Cluster has no available tokens$"):
        await quotas.check("someone-new")
    assert quotas.refused["cluster"] == 1


async def test_quota_limiter_period_turn_resets_once_on_the_clock(
    index: SqliteConversationIndex,
) -> None:
    clock = Clock()
    quotas = QuotaLimiter(_config(USER), quota_store(index), clock=clock)
    await quotas.spend("alice", 100)
    with pytest.raises(QuotaExceededError):
        await quotas.check("alice")
    clock.now += DAY / 2  # midnight exactly: a new day
    assert await quotas.check("alice") == {"user_daily": 100}
    assert await quotas.spend("alice", 30) == {"user_daily": 70}
    # a second "replica" reading later the same day does not reset again
    other = QuotaLimiter(_config(USER), SqliteQuotaStore(index), clock=Clock(clock.now + 3600))
    assert await other.check("alice") == {"user_daily": 70}


async def test_quota_limiter_increase_only_limiter_grows_per_period_passed(
    index: SqliteConversationIndex,
) -> None:
    clock = Clock()
    growing = {
        "type": "user_limiter",
        "name": "grow",
        "initial_quota": 0,
        "quota_increase": 40,
        "period": "1 hour",
    }
    quotas = QuotaLimiter(_config(growing), quota_store(index), clock=clock)
    with pytest.raises(QuotaExceededError):
        await quotas.check("alice")  # starts at 0, as lightspeed-stack's does
    clock.now += 3 * 3600
    assert await quotas.check("alice") == {"grow": 120}


def test_quota_limiter_concurrent_spenders_on_separate_connections_lose_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "conversations.sqlite3"
    spenders, rounds = 4, 25
    barrier = threading.Barrier(spenders)

    def spender() -> None:
        async def run() -> None:
            index = SqliteConversationIndex(path)
            quotas = QuotaLimiter(_config(USER, CLUSTER), quota_store(index), clock=Clock())
            barrier.wait()
            for _ in range(rounds):
                await quotas.spend("alice", 1)
            await index.aclose()

        asyncio.run(run())

    threads = [threading.Thread(target=spender) for _ in range(spenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sqlite3.connect(path) as db:
        rows = dict(db.execute("SELECT limiter, available FROM quotas").fetchall())
    assert rows == {"user_daily": 100 - spenders * rounds, "cluster": 250 - spenders * rounds}
