"""``RememberedMisses``: a model store's ``has_model`` misses asked once per interval, hits always.

llama-stack 0.7.3's provider asks ``has_model`` on every call with an id that is not registered,
and each miss read the key-value store (a new SQLite connection and thread per call).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llama_entra.backends.model_lookups import (
    MAX_MISSES,
    MISS_SECONDS,
    RememberedMisses,
    remember_missing_models,
)


class _Store:
    """A model store that knows ``registered`` and counts what it is asked."""

    def __init__(self, registered: set[str]) -> None:
        self.registered = registered
        self.asked: list[str] = []

    async def has_model(self, model_id: str) -> bool:
        self.asked.append(model_id)
        return model_id in self.registered

    async def get_model(self, model_id: str) -> str:
        return f"model {model_id}"


class _SlowStore(_Store):
    """A store that answers once ``answer`` is set (a read on its own thread, in 0.7.3)."""

    def __init__(self, registered: set[str]) -> None:
        super().__init__(registered)
        self.answer = asyncio.Event()

    async def has_model(self, model_id: str) -> bool:
        self.asked.append(model_id)
        await self.answer.wait()
        if "broken" in model_id:
            raise RuntimeError("the store failed")
        return model_id in self.registered


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_miss_is_asked_once_per_interval_and_a_hit_every_time() -> None:
    store, clock = _Store({"azure/gpt-4o-mini"}), _Clock()
    models = RememberedMisses(store, clock)
    assert [await models.has_model("gpt-4o-mini") for _ in range(3)] == [False] * 3
    assert [await models.has_model("azure/gpt-4o-mini") for _ in range(2)] == [True] * 2
    assert store.asked == ["gpt-4o-mini", "azure/gpt-4o-mini", "azure/gpt-4o-mini"]
    assert await models.get_model("azure/gpt-4o-mini") == "model azure/gpt-4o-mini"


async def test_a_model_registered_later_is_seen_once_the_miss_expires() -> None:
    store, clock = _Store(set()), _Clock()
    models = RememberedMisses(store, clock)
    assert not await models.has_model("gpt-4o-mini")
    store.registered.add("gpt-4o-mini")
    clock.now += MISS_SECONDS - 0.1
    assert not await models.has_model("gpt-4o-mini")
    clock.now += 0.2
    assert await models.has_model("gpt-4o-mini")
    assert store.asked == ["gpt-4o-mini", "gpt-4o-mini"]


async def test_the_remembered_misses_stay_bounded() -> None:
    store, clock = _Store(set()), _Clock()
    models = RememberedMisses(store, clock)
    for n in range(MAX_MISSES * 3):
        assert not await models.has_model(f"azure/caller-chosen-{n}")
    assert len(models._misses) <= MAX_MISSES
    assert len(store.asked) == MAX_MISSES * 3


def test_each_adapter_gets_the_wrapper_once_and_adapters_sharing_a_store_share_it() -> None:
    store = _Store(set())
    first, second, bare = (type("Adapter", (), {})() for _ in range(3))
    first.model_store = second.model_store = store
    table: Any = type("Table", (), {"impls_by_provider_id": {"a": first, "b": second, "c": bare}})
    inference = type("Router", (), {"routing_table": table})()
    assert remember_missing_models(inference) == 2
    assert isinstance(first.model_store, RememberedMisses)
    assert first.model_store is second.model_store
    assert not hasattr(bare, "model_store")
    assert remember_missing_models(inference) == 0
    assert remember_missing_models(object()) == 0


async def test_concurrent_calls_share_one_lookup_of_an_id() -> None:
    store = _SlowStore({"azure/gpt-4o-mini"})
    models = RememberedMisses(store, _Clock())
    misses = [asyncio.create_task(models.has_model("gpt-4o-mini")) for _ in range(50)]
    hits = [asyncio.create_task(models.has_model("azure/gpt-4o-mini")) for _ in range(50)]
    await asyncio.sleep(0)
    store.answer.set()
    assert await asyncio.gather(*misses) == [False] * 50
    assert await asyncio.gather(*hits) == [True] * 50
    assert sorted(store.asked) == ["azure/gpt-4o-mini", "gpt-4o-mini"]
    assert await models.has_model("azure/gpt-4o-mini")  # a hit is asked again afterwards
    assert len(store.asked) == 3


async def test_a_caller_going_away_leaves_the_shared_lookup_to_the_others() -> None:
    store = _SlowStore(set())
    models = RememberedMisses(store, _Clock())
    leaving = asyncio.create_task(models.has_model("gpt-4o-mini"))
    staying = asyncio.create_task(models.has_model("gpt-4o-mini"))
    await asyncio.sleep(0)
    leaving.cancel()
    store.answer.set()
    assert await staying is False
    assert leaving.cancelled()
    assert store.asked == ["gpt-4o-mini"]


async def test_a_failed_lookup_fails_its_waiters_and_is_not_remembered() -> None:
    store = _SlowStore(set())
    models = RememberedMisses(store, _Clock())
    waiting = [asyncio.create_task(models.has_model("broken-id")) for _ in range(3)]
    await asyncio.sleep(0)
    store.answer.set()
    for task in waiting:
        with pytest.raises(RuntimeError, match="the store failed"):
            await task
    with pytest.raises(RuntimeError):
        await models.has_model("broken-id")  # asked again, not answered from memory
    assert store.asked == ["broken-id", "broken-id"]
