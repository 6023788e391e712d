"""The llama-stack 0.7.3 server's per-call fixes (``llama_stack_server``).

``fixes`` gives a real ``remote::azure`` adapter pooled clients, remembers its model store's
misses (one question to the registry for three calls), routes the conversation store's
statements through a lane, and closes the pools.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from llama_entra.backends.llama_stack_http import POOLS
from llama_entra.backends.llama_stack_server import fixes


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


def _impls(adapter: Any) -> tuple[dict[Any, Any], _Table, Any]:
    from llama_stack_api import Api

    table = _Table()
    table.impls_by_provider_id = {"azure": adapter}  # type: ignore[attr-defined]
    object.__setattr__(adapter, "model_store", table)  # as the routing table sets it

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
    assert [await adapter.model_store.has_model("gpt-4o-mini") for _ in range(3)] == [False] * 3
    assert table.asked == ["gpt-4o-mini"]
    assert not pooled.is_closed
    await applied.aclose()
    assert pooled.is_closed
