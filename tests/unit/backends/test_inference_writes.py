"""``InferenceWrites`` on the active backend's real inference store (SQLite in a temporary file).

Many concurrent answers' records all land, in few transactions, each as the store's own write
would have stored it (read back through the store's own ``get_chat_completion``); a repeated id
replaces its record; ``aclose`` stores what is still queued; a store that queues its own writes
(not SQLite) is left alone.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

import pytest

from llama_entra.backends import active_backend
from llama_entra.backends.inference_writes import InferenceWrites, queue_inference_writes

_PACKAGE = {"llama-stack": "llama_stack", "ogx": "ogx"}[active_backend().name]


def _module(name: str) -> Any:
    return importlib.import_module(name.replace("PKG", _PACKAGE))


async def _inference_store(path: Path) -> Any:
    datatypes = _module("PKG.core.storage.datatypes")
    sqlstore = _module("PKG.core.storage.sqlstore.sqlstore")
    sqlstore.register_sqlstore_backends(
        {"unit_inference": datatypes.SqliteSqlStoreConfig(db_path=str(path))}
    )
    reference = datatypes.InferenceStoreReference(
        backend="unit_inference", table_name="chat_completions"
    )
    store = _module("PKG.providers.utils.inference.inference_store").InferenceStore(reference, [])
    await store.initialize()
    return store


def _completion(identity: str, text: str) -> tuple[Any, list[Any]]:
    api = _module("PKG_api")
    completion = api.OpenAIChatCompletion(
        id=identity,
        created=1_700_000_000,
        model="azure/gpt-4o-mini",
        object="chat.completion",
        choices=[
            api.OpenAIChoice(
                index=0,
                finish_reason="stop",
                message=api.OpenAIChatCompletionResponseMessage(role="assistant", content=text),
            )
        ],
    )
    return completion, [api.OpenAIUserMessageParam(role="user", content=f"question {identity}")]


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    store = await _inference_store(tmp_path / "inference.db")
    yield store
    await store.sql_store.sql_store.shutdown()


async def _stored_text(store: Any, identity: str) -> str:
    stored = await store.get_chat_completion(identity)
    return str(stored.choices[0].message.content)


async def test_inference_writes_concurrent_answers_all_stored_in_batches(store: Any) -> None:
    writes = queue_inference_writes(type("Router", (), {"store": store})())
    assert isinstance(writes, InferenceWrites)
    completions = [_completion(f"chatcmpl-{n}", f"answer {n}") for n in range(300)]
    # Through the store's own entry point, as the inference router calls it.
    await asyncio.gather(*(store.store_chat_completion(c, m) for c, m in completions))
    await writes.aclose()
    assert (writes.written, writes.failed) == (300, 0)
    listed = await store.list_chat_completions(limit=1000)
    assert len(listed.data) == 300
    assert await _stored_text(store, "chatcmpl-7") == "answer 7"
    stored = await store.get_chat_completion("chatcmpl-7")
    assert stored.input_messages[0].content == "question chatcmpl-7"


async def test_inference_writes_repeated_id_replaces_the_record(store: Any) -> None:
    writes = InferenceWrites(store)
    await writes.store_chat_completion(*_completion("chatcmpl-same", "first"))
    await asyncio.sleep(0.05)  # the first batch is written before the second is queued
    await writes.store_chat_completion(*_completion("chatcmpl-same", "second"))
    await writes.aclose()
    assert (writes.written, writes.failed) == (2, 0)
    assert await _stored_text(store, "chatcmpl-same") == "second"


async def test_inference_writes_after_close_writes_at_once(store: Any) -> None:
    writes = InferenceWrites(store)
    await writes.aclose()
    await writes.store_chat_completion(*_completion("chatcmpl-late", "late"))
    assert await _stored_text(store, "chatcmpl-late") == "late"


def test_queue_inference_writes_leaves_a_self_queuing_store_alone() -> None:
    class QueuingStore:
        enable_write_queue = True

    router = type("Router", (), {"store": QueuingStore()})()
    assert queue_inference_writes(router) is None
    assert queue_inference_writes(object()) is None
