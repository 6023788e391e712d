"""The llama-stack 0.7.3 server's per-call fixes (``llama_stack_server``).

A model name the registry does not have is asked about once per ``MISS_SECONDS``, not once
per call; registered names are always asked; registering or unregistering forgets the misses.
``fixes`` gives a real ``remote::azure`` adapter pooled clients, remembers the routing table's
misses, routes the conversation store's statements through a lane, and closes the pools.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from llama_entra.backends.llama_stack_http import POOLS
from llama_entra.backends.llama_stack_server import (
    MISS_SECONDS,
    ModelMisses,
    fixes,
    remember_model_misses,
)


class _Table:
    """A model routing table that knows ``azure/gpt-4o-mini`` and counts the questions."""

    def __init__(self) -> None:
        self.models = {"azure/gpt-4o-mini"}
        self.asked: list[str] = []

    async def has_model(self, model_id: str) -> bool:
        self.asked.append(model_id)
        return model_id in self.models

    async def register_model(self, model_id: str) -> None:
        self.models.add(model_id)

    async def unregister_model(self, model_id: str) -> None:
        self.models.discard(model_id)


async def test_a_miss_is_asked_once_until_it_expires() -> None:
    table, now = _Table(), [0.0]
    misses = ModelMisses(table.has_model, clock=lambda: now[0])
    assert [await misses.has_model("gpt-4o-mini") for _ in range(3)] == [False] * 3
    assert table.asked == ["gpt-4o-mini"]
    now[0] += MISS_SECONDS + 1
    assert await misses.has_model("gpt-4o-mini") is False
    assert table.asked == ["gpt-4o-mini"] * 2


async def test_a_registered_model_is_always_asked() -> None:
    table = _Table()
    misses = ModelMisses(table.has_model)
    assert [await misses.has_model("azure/gpt-4o-mini") for _ in range(2)] == [True, True]
    assert table.asked == ["azure/gpt-4o-mini"] * 2


async def test_registering_through_the_table_forgets_the_misses() -> None:
    table = _Table()
    assert remember_model_misses(table) is not None
    assert await table.has_model("gpt-4o-mini") is False
    assert await table.has_model("gpt-4o-mini") is False
    assert table.asked == ["gpt-4o-mini"]
    await table.register_model("gpt-4o-mini")
    assert await table.has_model("gpt-4o-mini") is True
    await table.unregister_model("gpt-4o-mini")
    assert await table.has_model("gpt-4o-mini") is False
    assert table.asked == ["gpt-4o-mini"] * 3


async def test_a_miss_answered_while_a_model_is_registered_is_not_kept() -> None:
    table = _Table()

    async def asked_during_registration(model_id: str) -> bool:
        found = await table.has_model(model_id)  # "no", read before the registration
        await table.register_model(model_id)
        misses.forget()
        return found

    misses = ModelMisses(asked_during_registration)
    assert await misses.has_model("gpt-4o-mini") is False
    assert await misses.has_model("gpt-4o-mini") is True  # asked again: the "no" was not kept


def test_a_table_without_has_model_is_left_alone() -> None:
    assert remember_model_misses(object()) is None


def _impls(adapter: Any) -> tuple[dict[Any, Any], _Table, Any]:
    from llama_stack_api import Api

    table = _Table()
    table.impls_by_provider_id = {"azure": adapter}  # type: ignore[attr-defined]

    async def ensure_engine() -> None:
        return None

    inner = SimpleNamespace(async_session=lambda: None, _ensure_engine=ensure_engine)
    conversations = SimpleNamespace(sql_store=SimpleNamespace(sql_store=inner))
    impls = {Api.inference: SimpleNamespace(routing_table=table), Api.conversations: conversations}
    return impls, table, inner


async def test_fixes_apply_each_one_and_close_the_pools(azure_adapter: Any) -> None:
    adapter = azure_adapter
    impls, table, inner = _impls(adapter)
    own_session = inner.async_session
    applied = fixes(impls)
    assert applied.applied == [
        "pooled HTTP clients",
        "conversation writes through the store lane",
        "remembered model misses",
    ]
    assert adapter.config.network is None  # its settings live in the pooled clients now
    pooled = adapter.client._client
    assert len({id(adapter.client._client) for _ in range(4 * POOLS)}) == POOLS
    assert inner.async_session is not own_session
    await table.has_model("gpt-4o-mini")
    await table.has_model("gpt-4o-mini")
    assert table.asked == ["gpt-4o-mini"]
    assert not pooled.is_closed
    await applied.aclose()
    assert pooled.is_closed
