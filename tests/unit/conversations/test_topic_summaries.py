"""Unit tests: topic summaries run in the background, bounded, logged, drained at shutdown.

The summarizer talks to its holder and store through two methods (``chat``, ``set_topic``);
these tests give it stand-ins for those two that a test can hold open, and a real event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from llama_entra.conversations.store import ConversationStore
from llama_entra.conversations.topics import TopicSummarizer
from llama_entra.errors import UpstreamError
from llama_entra.stack import ClientHolder, ModelInfo

MODEL = ModelInfo("azure/gpt-4o-mini", "azure", "gpt-4o-mini", "llm", azure=True)


class _Model:
    """Answers each chat with "topic of <question>" once ``release`` is set."""

    def __init__(self, *, fail: bool = False) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.most_at_once = 0
        self.fail = fail

    async def chat(self, model: ModelInfo, params: dict[str, Any]) -> dict[str, Any]:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.release.wait()
            if self.fail:
                raise UpstreamError("Azure said 500", status=500)
            question = params["messages"][-1]["content"]
            return {"choices": [{"message": {"content": f" topic of {question} "}}]}
        finally:
            self.running -= 1


class _Topics:
    def __init__(self) -> None:
        self.topics: dict[str, str] = {}

    async def set_topic(self, conversation_id: str, summary: str) -> None:
        self.topics[conversation_id] = summary


def _summarizer(model: _Model, topics: _Topics, **limits: int) -> TopicSummarizer:
    return TopicSummarizer(cast(ClientHolder, model), cast(ConversationStore, topics), **limits)


async def test_schedule_returns_at_once_and_the_topic_is_stored_later() -> None:
    model, topics = _Model(), _Topics()
    summaries = _summarizer(model, topics)
    summaries.schedule(MODEL, "hello", "conv_1")
    await asyncio.sleep(0)
    assert topics.topics == {} and summaries.pending == 1
    model.release.set()
    await summaries.aclose(5)
    assert topics.topics == {"conv_1": "topic of hello"}
    assert summaries.pending == 0


async def test_at_most_concurrency_summaries_call_the_model_at_once() -> None:
    model, topics = _Model(), _Topics()
    summaries = _summarizer(model, topics, concurrency=2)
    for n in range(5):
        summaries.schedule(MODEL, f"q{n}", f"conv_{n}")
    for _ in range(5):
        await asyncio.sleep(0)
    assert model.running == 2
    model.release.set()
    await summaries.aclose(5)
    assert model.most_at_once == 2 and len(topics.topics) == 5


async def test_a_full_backlog_drops_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    model, topics = _Model(), _Topics()
    summaries = _summarizer(model, topics, backlog=2)
    with caplog.at_level(logging.WARNING):
        for n in range(3):
            summaries.schedule(MODEL, "q", f"conv_{n}")
    assert "no topic summary for conv_2: 2 summaries already pending" in caplog.text
    model.release.set()
    await summaries.aclose(5)
    assert sorted(topics.topics) == ["conv_0", "conv_1"]


async def test_a_failed_summary_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    model, topics = _Model(fail=True), _Topics()
    summaries = _summarizer(model, topics)
    summaries.schedule(MODEL, "q", "conv_x")
    model.release.set()
    with caplog.at_level(logging.WARNING):
        await summaries.aclose(5)
    assert "no topic summary for conv_x: Azure said 500" in caplog.text
    assert topics.topics == {}


async def test_shutdown_drops_what_the_drain_limit_cannot_wait_for_and_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model, topics = _Model(), _Topics()  # never released: the model never answers
    summaries = _summarizer(model, topics)
    summaries.schedule(MODEL, "q", "conv_slow")
    await asyncio.sleep(0)
    with caplog.at_level(logging.INFO):
        await summaries.aclose(0.05)
    assert "dropped 1 topic summaries at shutdown (drain limit 0.1 s): conv_slow" in caplog.text
    assert summaries.pending == 0 and model.running == 0
    with caplog.at_level(logging.WARNING):
        summaries.schedule(MODEL, "q", "conv_late")
    assert "no topic summary for conv_late: the service is stopping" in caplog.text
