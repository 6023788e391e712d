"""Unit tests: direct chat completions carry the provider data into the router, streams too."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict

from llama_entra.backends.direct_chat import DirectChat, StackInternals

_DATA: contextvars.ContextVar[str | None] = contextvars.ContextVar("provider_data", default=None)


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    stream: bool = False


class _Reply(BaseModel):
    text: str
    seen: str | None


@contextmanager
def _provider_data(headers: dict[str, str]) -> Iterator[None]:
    token = _DATA.set(headers.get("X-Data"))
    try:
        yield
    finally:
        _DATA.reset(token)


def _preserve(gen: AsyncIterator[Any], variables: list[Any]) -> AsyncIterator[Any]:
    captured = {var: var.get() for var in variables}

    async def wrapper() -> AsyncIterator[Any]:
        iterator = aiter(gen)
        while True:
            tokens = [var.set(value) for var, value in captured.items()]
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                return
            finally:
                for var, token in zip(captured, tokens, strict=True):
                    var.reset(token)
            yield item

    return wrapper()


class _Router:
    def __init__(self) -> None:
        self.requests: list[_Request] = []

    async def openai_chat_completion(self, request: _Request) -> Any:
        self.requests.append(request)
        if not request.stream:
            return _Reply(text="whole", seen=_DATA.get())

        async def chunks() -> AsyncIterator[_Reply]:
            for text in ("a", "b"):
                yield _Reply(text=text, seen=_DATA.get())  # read while iterated

        return chunks()


_INTERNALS = StackInternals(_Request, _provider_data, _preserve, _DATA)


async def test_direct_chat_sends_the_request_model_with_the_provider_data() -> None:
    router = _Router()
    chat = DirectChat(router, _INTERNALS)
    reply = await chat.complete({"model": "azure/m", "temperature": 0.5}, {"X-Data": "token"})
    assert reply == {"text": "whole", "seen": "token"}
    assert router.requests[0].model == "azure/m"
    assert router.requests[0].model_extra == {"temperature": 0.5}
    assert _DATA.get() is None  # nothing leaks past the call


async def test_direct_chat_stream_keeps_the_provider_data_while_it_is_read_later() -> None:
    chat = DirectChat(_Router(), _INTERNALS)
    chunks = await chat.stream({"model": "azure/m", "stream": True}, {"X-Data": "token"})
    assert _DATA.get() is None  # the call returned; the chunks are read outside its context
    assert [chunk async for chunk in chunks] == [
        {"text": "a", "seen": "token"},
        {"text": "b", "seen": "token"},
    ]
