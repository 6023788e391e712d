"""``RememberedMisses``: a model store's ``has_model`` misses asked once per interval, hits always.

llama-stack 0.7.3's provider asks ``has_model`` on every call with an id that is not registered,
and each miss read the key-value store (a new SQLite connection and thread per call).
"""

from __future__ import annotations

from typing import Any

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
