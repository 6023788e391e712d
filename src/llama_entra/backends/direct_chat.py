"""Library mode: chat completions from the in-process stack's inference router, directly.

The library client dresses each call as an HTTP request (the SDK builds and transforms it, the
library client matches the route, reads the endpoint's type hints, builds the request model,
dumps the result to JSON text inside an ``httpx.Response`` that the SDK parses again) and the
adapter then dumps the SDK's model once more. Here the router gets its own request model and
the provider data in the same context variable the library client sets, and the result is
dumped once, to what the library client would have produced (``model_dump(mode="json")`` is
its ``json.loads(model_dump_json())``). Errors are the router's own exceptions, as through the
library client, which passes them through before the first chunk; a stream is iterated with
the provider data preserved around each chunk, as the library client does.

llama-stack 0.7.3 and OGX share these names (``llama_stack.core`` / ``ogx.core``,
``llama_stack_api.inference`` / ``ogx_api.inference``); the adapter hands in its backend's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from llama_entra.backends.base import JSON, Headers
from llama_entra.backends.inference_writes import InferenceWrites, queue_inference_writes

__all__ = ["DirectChat", "StackInternals"]


@dataclass(frozen=True, slots=True)
class StackInternals:
    """The backend's pieces a direct call needs."""

    request_model: Any
    """``OpenAIChatCompletionRequestWithExtraBody``."""
    provider_data_context: Callable[[dict[str, str]], AbstractContextManager[Any]]
    """``request_provider_data_context``."""
    preserve: Callable[[AsyncIterator[Any], list[Any]], AsyncIterator[Any]]
    """``preserve_contexts_async_generator``."""
    provider_data_var: Any
    """``PROVIDER_DATA_VAR``."""


class DirectChat:
    """``openai_chat_completion`` on the inference router, without the HTTP emulation."""

    def __init__(
        self,
        router: Any,
        internals: StackInternals,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._router = router
        self._internals = internals
        self._closers = list(closers)
        # Queued, batched records of each completion (see ``inference_writes``).
        self.writes: InferenceWrites | None = queue_inference_writes(router)

    async def aclose(self) -> None:
        """Store the queued completion records, then run ``closers`` (before the stack stops)."""
        if self.writes is not None:
            await self.writes.aclose()
        for close in self._closers:
            await close()

    async def complete(self, params: JSON, headers: Headers) -> JSON:
        """A chat completion (``params`` without ``stream``) as JSON."""
        request = self._internals.request_model(**params)
        with self._internals.provider_data_context(dict(headers)):
            result = await self._router.openai_chat_completion(request)
        dumped: JSON = result.model_dump(mode="json")
        return dumped

    async def stream(self, params: JSON, headers: Headers) -> AsyncIterator[JSON]:
        """The same, streamed (``params`` with ``stream: true``): JSON chunks."""
        request = self._internals.request_model(**params)
        internals = self._internals
        with internals.provider_data_context(dict(headers)):
            result = await self._router.openai_chat_completion(request)
            chunks = internals.preserve(result, [internals.provider_data_var])
        return _dumped(chunks)


async def _dumped(chunks: AsyncIterator[Any]) -> AsyncIterator[JSON]:
    async for chunk in chunks:
        dumped: JSON = chunk.model_dump(mode="json")
        yield dumped
