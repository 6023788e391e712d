"""The llama-stack 0.7.3 backend: ``llama_stack_client`` in service mode, its library client
in-process, provider data in ``X-LlamaStack-Provider-Data``, ``llama stack run`` as the server
(with library mode's per-call fixes, ``llama_stack_server``).

The client is Stainless-generated: per-call headers go in ``extra_headers``, body fields the
SDK does not name go in ``extra_body``. Its retries stay on for everything but inference, where
they would repeat what the server's provider already retried (Azure's 429, see
``llama_entra.azure.retry``): an inference call is sent again only when the connection failed
before any answer (a server drops its keep-alive connection after an upstream 401).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import llama_stack_client
from llama_stack_client import AsyncLlamaStackClient

from llama_entra.backends.base import (
    JSON,
    Backend,
    ConversationRecord,
    Headers,
    InferenceProviderKit,
    ListedModel,
    ListedProvider,
)
from llama_entra.backends.boundary import ErrorBoundary
from llama_entra.backends.direct import DirectConversations
from llama_entra.backends.direct_chat import DirectChat, StackInternals
from llama_entra.backends.llama_stack_direct import LlamaStackDirectConversations
from llama_entra.backends.llama_stack_http import share_http_clients
from llama_entra.backends.model_lookups import remember_missing_models
from llama_entra.backends.records import conversation_record, listed_model, to_json
from llama_entra.backends.sdk_retries import disable_sdk_retries
from llama_entra.backends.service_http import service_http_client
from llama_entra.backends.upstream import body_message, translate_common, upstream_error
from llama_entra.errors import (
    LlamaEntraError,
    UpstreamConnectionError,
    UpstreamUnavailableError,
)

__all__ = ["LlamaStackBackend"]

_ALL_ITEMS = 1_000_000  # library mode: one read of a whole conversation
_SERVER = "llama_entra.backends.llama_stack_server"


def translate(exc: BaseException) -> LlamaEntraError:
    """The llama-entra error for what ``llama_stack_client`` or the library raised."""
    if isinstance(exc, llama_stack_client.APITimeoutError):
        return UpstreamUnavailableError("Llama Stack did not answer in time")
    if isinstance(exc, llama_stack_client.APIConnectionError):
        return UpstreamConnectionError("Llama Stack is unreachable")
    if isinstance(exc, llama_stack_client.APIStatusError):
        return upstream_error(exc.status_code, body_message(exc.body) or str(exc))
    return translate_common(exc)


def _split(method: Callable[..., Any], params: JSON) -> JSON:
    """Keyword arguments for an SDK method: named ones direct, the rest in ``extra_body``."""
    named = set(inspect.signature(method).parameters)
    known = {key: value for key, value in params.items() if key in named}
    extra = {key: value for key, value in params.items() if key not in named}
    return {**known, "extra_body": extra} if extra else known


class LlamaStackClientAdapter(ErrorBoundary):
    """``StackClient`` over ``AsyncLlamaStackClient`` (or its in-process subclass)."""

    def __init__(
        self,
        backend: Backend,
        client: AsyncLlamaStackClient,
        *,
        library: bool,
        direct: DirectConversations | None = None,
        chat: DirectChat | None = None,
    ) -> None:
        super().__init__(backend, translate, library=library)
        self.raw = client
        # Inference is never retried by the client: a server's provider already applied the
        # retry policy to Azure's 429 (``llama_entra.azure.retry``); ``_send`` only sends again
        # when the connection failed before any answer.
        self._inference = client if library else client.with_options(max_retries=0)
        self._direct = direct  # library mode: conversations without the HTTP emulation
        self._chat = chat  # library mode: chat completions without it
        self.strict_item_order = False  # items sort by a timestamp in whole seconds
        self.chooses_conversation_ids = direct is not None

    async def _send(self, send: Callable[[], Awaitable[Any]]) -> Any:
        """An inference call, once more if the connection failed (a server drops its keep-alive
        connection after an upstream 401); never after a timeout or an answer."""
        try:
            return await send()
        except llama_stack_client.APITimeoutError:
            raise
        except llama_stack_client.APIConnectionError:
            if self._library:
                raise
        return await send()

    async def chat_completion(self, params: JSON, headers: Headers) -> JSON:
        """See ``StackClient``."""
        create = self._inference.chat.completions.create
        with self._translated():
            if self._chat is not None:
                return await self._chat.complete(params, headers)
            kwargs = _split(create, params)
            result = await self._send(lambda: create(**kwargs, extra_headers=dict(headers)))
        return to_json(result)

    async def chat_completion_stream(self, params: JSON, headers: Headers) -> AsyncIterator[JSON]:
        """See ``StackClient``."""
        create = self._inference.chat.completions.create
        params = params | {"stream": True}
        with self._translated():
            if self._chat is not None:
                return self._json_stream(await self._chat.stream(params, headers))
            kwargs = _split(create, params)
            stream = await self._send(lambda: create(**kwargs, extra_headers=dict(headers)))
        return self._json_stream(cast(AsyncIterator[Any], stream))

    async def create_response(self, params: JSON, headers: Headers) -> JSON:
        """See ``StackClient``."""
        create = self._inference.responses.create
        with self._translated():
            kwargs = _split(create, params)
            result = await self._send(lambda: create(**kwargs, extra_headers=dict(headers)))
        return to_json(result)

    async def response_stream(self, params: JSON, headers: Headers) -> AsyncIterator[JSON]:
        """See ``StackClient``."""
        create = self._inference.responses.create
        params = params | {"stream": True}
        with self._translated():
            kwargs = _split(create, params)
            stream = await self._send(lambda: create(**kwargs, extra_headers=dict(headers)))
        return self._json_stream(cast(AsyncIterator[Any], stream))

    async def list_models(self) -> list[ListedModel]:
        """See ``StackClient``."""
        with self._translated():
            return [listed_model(model) for model in await self.raw.models.list()]

    async def list_providers(self) -> list[ListedProvider]:
        """See ``StackClient``."""
        with self._translated():
            providers = await self.raw.providers.list()
        return [
            ListedProvider(p.provider_id, p.provider_type, dict(p.config or {})) for p in providers
        ]

    async def check_health(self, seconds: float) -> None:
        """See ``StackClient``."""
        if self._library:
            return  # in-process: up once it exists
        with self._translated():
            await self.raw.with_options(timeout=seconds, max_retries=0).inspect.health()

    async def create_conversation(
        self,
        metadata: Mapping[str, str] | None = None,
        items: list[JSON] | None = None,
        conversation_id: str | None = None,
    ) -> str:
        """See ``StackClient``."""
        if conversation_id is not None and self._direct is None:
            raise ValueError("a Llama Stack server mints its conversation ids")
        with self._translated():
            if self._direct is not None:
                return await self._direct.create(metadata or {}, items, conversation_id)
            extra: Any = {"items": items} if items else {}
            conversation = await self.raw.conversations.create(
                metadata=dict(metadata or {}), **extra
            )
        return str(conversation.id)

    async def create_conversation_with_items(
        self,
        metadata: Mapping[str, str],
        items: list[JSON],
        conversation_id: str | None = None,
    ) -> tuple[str, list[str]]:
        """See ``StackClient``: no ids (nothing caches this backend's items)."""
        return await self.create_conversation(metadata, items, conversation_id), []

    async def retrieve_conversation(self, conversation_id: str) -> ConversationRecord:
        """See ``StackClient``."""
        with self._translated():
            if self._direct is not None:
                return await self._direct.retrieve(conversation_id)
            return conversation_record(await self.raw.conversations.retrieve(conversation_id))

    async def update_conversation_metadata(
        self, conversation_id: str, metadata: Mapping[str, str]
    ) -> None:
        """See ``StackClient``."""
        with self._translated():
            await self.raw.conversations.update(conversation_id, metadata=dict(metadata))

    async def conversation_items(self, conversation_id: str) -> list[JSON]:
        """See ``StackClient``.

        llama-stack 0.7.3 ignores ``after`` and its server answers one page of at most 100 items
        (the oldest), so that is what there is in service mode; the SDK's paginator stops after
        it. In library mode the store reads every item anyway and takes any limit: all of them.
        """
        with self._translated():
            if self._direct is not None:
                page = await self._direct.items(conversation_id, order="asc", limit=_ALL_ITEMS)
                return page.items
            pages = self.raw.conversations.items.list(conversation_id, order="asc", limit=100)
            return [to_json(item) async for item in pages]

    async def delete_conversation(self, conversation_id: str) -> None:
        """See ``StackClient``."""
        with self._translated():
            await self.raw.conversations.delete(conversation_id)

    async def newest_item_ids(self, conversation_id: str, count: int) -> list[str]:
        """See ``StackClient``."""
        with self._translated():
            if self._direct is not None:
                return await self._direct.newest_ids(conversation_id, count)
            page = await self.raw.conversations.items.list(
                conversation_id, order="desc", limit=count
            )
            return [str(item.id) for item in reversed(page.data)]

    async def add_conversation_items(self, conversation_id: str, items: list[JSON]) -> list[str]:
        """See ``StackClient``."""
        with self._translated():
            if self._direct is not None:
                return await self._direct.add_items(conversation_id, items)
            added = await self.raw.conversations.items.create(
                conversation_id, items=cast(Any, items)
            )
        return [str(item.id) for item in added.data]

    async def touch_inference_store(self) -> None:
        """See ``StackClient``."""
        with self._translated():
            await self.raw.chat.completions.list(limit=1)

    async def _json_stream(self, stream: AsyncIterator[Any]) -> AsyncIterator[JSON]:
        with self._translated():
            async for item in stream:
                yield to_json(item)

    async def aclose(self) -> None:
        """See ``StackClient``."""
        if self._chat is not None:
            await self._chat.aclose()
        if self._direct is not None:
            await self._direct.aclose()
        shutdown = getattr(self.raw, "shutdown", None)
        if shutdown is not None:  # library mode: stop the in-process stack's providers
            await shutdown()
        await self.raw.close()


class LlamaStackBackend:
    """llama-stack 0.7.3 (see the module docstring)."""

    name = "llama-stack"
    package = "llama-stack"
    client_package = "llama-stack-client"
    provider_data_header = "X-LlamaStack-Provider-Data"
    server_environment: Mapping[str, str] = {"LLAMA_STACK_LOG_FORMAT": "json"}

    async def open_library(self, run_config: Path) -> LlamaStackClientAdapter:
        """See ``Backend``."""
        import llama_stack_api.conversations
        from llama_stack.core.library_client import AsyncLlamaStackAsLibraryClient
        from llama_stack.core.request_headers import (
            PROVIDER_DATA_VAR,
            request_provider_data_context,
        )
        from llama_stack.core.utils.context import preserve_contexts_async_generator
        from llama_stack_api import Api
        from llama_stack_api.inference import OpenAIChatCompletionRequestWithExtraBody

        client = AsyncLlamaStackAsLibraryClient(str(run_config), skip_logger_removal=True)
        await client.initialize()
        impls = client.impls or {}
        api = llama_stack_api.conversations
        conversations = impls.get(Api.conversations)
        direct = LlamaStackDirectConversations(conversations, api) if conversations else None
        internals = StackInternals(
            OpenAIChatCompletionRequestWithExtraBody,
            request_provider_data_context,
            preserve_contexts_async_generator,
            PROVIDER_DATA_VAR,
        )
        inference = impls.get(Api.inference)
        disable_sdk_retries(inference)
        remember_missing_models(inference)
        pools = share_http_clients(inference)
        chat = DirectChat(inference, internals, [pools.aclose]) if inference else None
        return LlamaStackClientAdapter(
            self, cast(AsyncLlamaStackClient, client), library=True, direct=direct, chat=chat
        )

    def open_service(
        self, url: str, api_key: str | None, timeout: float
    ) -> LlamaStackClientAdapter:
        """See ``Backend``."""
        client = AsyncLlamaStackClient(
            base_url=url,
            api_key=api_key,
            timeout=timeout,
            max_retries=2,  # not for inference: see LlamaStackClientAdapter._send
            http_client=service_http_client(url, timeout),
        )
        return LlamaStackClientAdapter(self, client, library=False)

    def inference_provider(self) -> InferenceProviderKit:
        """See ``Backend``."""
        from llama_entra.backends.llama_stack_provider import LlamaStackProviderKit

        return LlamaStackProviderKit()

    def server_command(self, run_config: Path, port: int | None = None) -> list[str]:
        """See ``Backend``: ``llama stack run`` with library mode's per-call fixes
        (``llama_stack_server``)."""
        command = [sys.executable, "-m", _SERVER, str(run_config)]
        return [*command, "--port", str(port)] if port is not None else command
