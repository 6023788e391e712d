"""The OGX 1.x backend (Llama Stack's new name): ``ogx_client`` in service mode, OGX's library
client in-process, provider data in ``X-OGX-Provider-Data``, ``ogx run --insecure`` as server.

ogx-client is OpenAPI-generated, unlike llama-stack-client: per-call headers go in
``_headers`` (an ``extra_headers`` argument would silently land in the request body),
timeouts in ``_request_timeout``; there are no client retries, so one call that finds its
keep-alive connection dropped is retried here; a stream can be iterated only once; listings
come back as one page; ``conversations.create()`` needs a body. Client and server must share
major.minor, else the server answers 426 (reported at start-up by the service).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import httpx
from ogx_client import AsyncOgxClient
from ogx_client.exceptions import ApiException

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
from llama_entra.backends.direct import DirectConversations, ItemPage
from llama_entra.backends.direct_chat import DirectChat, StackInternals
from llama_entra.backends.ogx_direct import OgxDirectConversations
from llama_entra.backends.openai_chunks import validate_chunks_of
from llama_entra.backends.records import conversation_record, listed_model
from llama_entra.backends.sdk_retries import disable_sdk_retries
from llama_entra.backends.service_http import service_http_client
from llama_entra.backends.upstream import body_message, translate_common, upstream_error
from llama_entra.errors import (
    LlamaEntraError,
    UpstreamConnectionError,
    UpstreamUnavailableError,
)

__all__ = ["OgxBackend"]

_SERVER = "llama_entra.backends.ogx_server"
_PAGE = 1000  # items per read in library mode (the store takes it; its docs say 1-100)

# ogx-client's request models declare message content as a union that a plain string (valid
# OpenAI input) does not match on serialisation; pydantic warns on every such call while the
# request goes out correctly.
warnings.filterwarnings(
    "ignore", message="Pydantic serializer warnings", category=UserWarning, module="pydantic"
)


def translate(exc: BaseException) -> LlamaEntraError:
    """The llama-entra error for what ``ogx_client`` or OGX's library client raised."""
    if isinstance(exc, ApiException):
        if not exc.status:  # ogx-client wraps every transport error as status 0
            if isinstance(exc.__context__, httpx.TimeoutException):
                return UpstreamUnavailableError("Llama Stack (OGX) did not answer in time")
            return UpstreamConnectionError("Llama Stack (OGX) is unreachable")
        return upstream_error(int(exc.status), _message(exc))
    return translate_common(exc)


def _message(exc: ApiException) -> str:
    try:
        parsed = json.loads(exc.body) if exc.body else None
    except ValueError:
        parsed = None
    return body_message(parsed) or str(exc.reason or exc.body or exc.status)


def to_json(obj: Any) -> JSON:
    """``obj`` (an ogx-client model, or a dict the client could not type) as JSON.

    ogx-client's ``to_dict()`` gives wire names without unset ``None`` fields, but leaves some
    nested oneOf wrappers (in Responses output) as objects; those are dumped on the way.
    """
    if isinstance(obj, dict):
        return obj
    dumped: JSON = json.loads(json.dumps(obj.to_dict(), default=_nested))
    return dumped


def _item_id(item: Any) -> str:
    """The id of an item ogx-client returns (possibly inside a oneOf wrapper)."""
    return str(getattr(getattr(item, "actual_instance", None) or item, "id", ""))


def _nested(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class OgxClientAdapter(ErrorBoundary):
    """``StackClient`` over ``AsyncOgxClient`` (or OGX's in-process subclass)."""

    def __init__(
        self,
        backend: Backend,
        client: AsyncOgxClient,
        *,
        library: bool,
        direct: DirectConversations | None = None,
        chat: DirectChat | None = None,
    ) -> None:
        super().__init__(backend, translate, library=library)
        self.raw = client
        self._direct = direct  # library mode: conversations without the HTTP emulation
        self._chat = chat  # library mode: chat completions without it
        self.strict_item_order = True  # a per-conversation sequence
        self.chooses_conversation_ids = direct is not None

    async def _call(self, send: Callable[[], Awaitable[Any]]) -> Any:
        """``send()``, once more if the connection failed (no client retries in ogx-client)."""
        with self._translated():
            try:
                return await send()
            except ApiException as exc:
                if (
                    self._library
                    or exc.status
                    or isinstance(exc.__context__, httpx.TimeoutException)
                ):
                    raise
            return await send()

    async def chat_completion(self, params: JSON, headers: Headers) -> JSON:
        """See ``StackClient``."""
        if self._chat is not None:
            chat = self._chat
            completion: JSON = await self._call(lambda: chat.complete(params, headers))
            return completion
        create = self.raw.chat_completions.create
        return to_json(await self._call(lambda: create(**params, _headers=dict(headers))))

    async def chat_completion_stream(self, params: JSON, headers: Headers) -> AsyncIterator[JSON]:
        """See ``StackClient``."""
        params = params | {"stream": True}
        if self._chat is not None:
            chat = self._chat
            return self._json_stream(await self._call(lambda: chat.stream(params, headers)))
        create = self.raw.chat_completions.create
        stream = await self._call(lambda: create(**params, _headers=dict(headers)))
        return self._json_stream(stream)

    async def create_response(self, params: JSON, headers: Headers) -> JSON:
        """See ``StackClient``."""
        create = self.raw.responses.create
        return to_json(await self._call(lambda: create(**params, _headers=dict(headers))))

    async def response_stream(self, params: JSON, headers: Headers) -> AsyncIterator[JSON]:
        """See ``StackClient``."""
        create = self.raw.responses.create
        params = params | {"stream": True}
        stream = await self._call(lambda: create(**params, _headers=dict(headers)))
        return self._json_stream(stream)

    async def list_models(self) -> list[ListedModel]:
        """See ``StackClient``."""
        listed = await self._call(self.raw.models.list)
        listed = getattr(listed, "actual_instance", None) or listed  # a oneOf wrapper
        models = getattr(listed, "data", listed)
        return [listed_model(model) for model in models]

    async def list_providers(self) -> list[ListedProvider]:
        """See ``StackClient``."""
        providers = await self._call(self.raw.providers.list)
        providers = getattr(providers, "data", providers)
        return [
            ListedProvider(p.provider_id, p.provider_type, dict(p.config or {})) for p in providers
        ]

    async def check_health(self, seconds: float) -> None:
        """See ``StackClient``."""
        if self._library:
            return  # in-process: up once it exists
        with self._translated():
            await self.raw.inspect.health(_request_timeout=seconds)

    async def create_conversation(
        self,
        metadata: Mapping[str, str] | None = None,
        items: list[JSON] | None = None,
        conversation_id: str | None = None,
    ) -> str:
        """See ``StackClient``."""
        if conversation_id is not None and self._direct is None:
            raise ValueError("a Llama Stack server mints its conversation ids")
        if self._direct is not None:
            direct = self._direct
            return str(
                await self._call(lambda: direct.create(metadata or {}, items, conversation_id))
            )
        create = self.raw.conversations.create
        extra: JSON = {"items": items} if items else {}
        conversation = await self._call(lambda: create(metadata=dict(metadata or {}), **extra))
        return str(conversation.id)

    async def create_conversation_with_items(
        self,
        metadata: Mapping[str, str],
        items: list[JSON],
        conversation_id: str | None = None,
    ) -> tuple[str, list[str]]:
        """See ``StackClient``."""
        if self._direct is None:
            return await self.create_conversation(metadata, items, conversation_id), []
        direct = self._direct
        created: tuple[str, list[str]] = await self._call(
            lambda: direct.create_with_item_ids(metadata, items, conversation_id)
        )
        return created

    async def retrieve_conversation(self, conversation_id: str) -> ConversationRecord:
        """See ``StackClient``."""
        if self._direct is not None:
            direct = self._direct
            record: ConversationRecord = await self._call(lambda: direct.retrieve(conversation_id))
            return record
        retrieve = self.raw.conversations.retrieve
        return conversation_record(await self._call(lambda: retrieve(conversation_id)))

    async def update_conversation_metadata(
        self, conversation_id: str, metadata: Mapping[str, str]
    ) -> None:
        """See ``StackClient``."""
        update = self.raw.conversations.update
        await self._call(lambda: update(conversation_id, metadata=dict(metadata)))

    async def conversation_items(self, conversation_id: str) -> list[JSON]:
        """See ``StackClient``: ogx-client returns one page per call, so follow ``last_id``."""
        if self._direct is not None:
            return await self._direct_items(self._direct, conversation_id)
        items: list[JSON] = []
        after: str | None = None
        while True:
            page = await self._call(
                lambda after=after: self.raw.items.list(  # type: ignore[misc]
                    conversation_id, order="asc", limit=100, after=after
                )
            )
            items.extend(
                to_json(getattr(item, "actual_instance", None) or item) for item in page.data
            )
            if not page.has_more or not page.data:
                return items
            after = page.last_id

    async def _direct_items(self, direct: DirectConversations, conversation_id: str) -> list[JSON]:
        items: list[JSON] = []
        while True:
            after = str(items[-1]["id"]) if items else None

            async def read(after: str | None = after) -> ItemPage:
                return await direct.items(conversation_id, order="asc", limit=_PAGE, after=after)

            page: ItemPage = await self._call(read)
            items.extend(page.items)
            if not page.has_more or not page.items:
                return items

    async def delete_conversation(self, conversation_id: str) -> None:
        """See ``StackClient``."""
        await self._call(lambda: self.raw.conversations.delete(conversation_id))

    async def newest_item_ids(self, conversation_id: str, count: int) -> list[str]:
        """See ``StackClient``."""
        if self._direct is not None:
            direct = self._direct
            ids: list[str] = await self._call(lambda: direct.newest_ids(conversation_id, count))
            return ids
        page = await self._call(
            lambda: self.raw.items.list(conversation_id, order="desc", limit=count)
        )
        return [_item_id(item) for item in reversed(page.data)]

    async def add_conversation_items(self, conversation_id: str, items: list[JSON]) -> list[str]:
        """See ``StackClient``."""
        if self._direct is not None:
            direct = self._direct
            added: list[str] = await self._call(lambda: direct.add_items(conversation_id, items))
            return added
        listed = await self._call(lambda: self.raw.items.create(conversation_id, items=items))
        return [_item_id(item) for item in getattr(listed, "data", None) or []]

    async def touch_inference_store(self) -> None:
        """See ``StackClient``."""
        await self._call(lambda: self.raw.chat_completions.list(limit=1))

    async def _json_stream(self, stream: Any) -> AsyncIterator[JSON]:
        with self._translated():
            async for item in stream:
                data = to_json(item)
                error = data.get("error") if "choices" not in data and "type" not in data else None
                if isinstance(error, dict):  # the server reports a failure mid-stream as an event
                    code = error.get("code")
                    status = code if isinstance(code, int) else 502
                    raise upstream_error(status, str(error.get("message") or error))
                yield data

    async def aclose(self) -> None:
        """See ``StackClient``."""
        if self._chat is not None:
            await self._chat.aclose()
        if self._direct is not None:
            await self._direct.aclose()
        shutdown = getattr(self.raw, "shutdown", None)
        if shutdown is not None:  # library mode: stop the in-process stack's providers
            await shutdown()
        close = cast(Callable[[], Awaitable[None]], self.raw.close)  # untyped in ogx-client
        await close()


class OgxBackend:
    """OGX 1.x (see the module docstring)."""

    name = "ogx"
    package = "ogx"
    client_package = "ogx-client"
    provider_data_header = "X-OGX-Provider-Data"
    server_environment: Mapping[str, str] = {"OGX_LOG_FORMAT": "json"}

    async def open_library(self, run_config: Path) -> OgxClientAdapter:
        """See ``Backend``."""
        import ogx_api.conversations
        from ogx.core.conversations.conversations import ITEMS_TABLE
        from ogx.core.library_client import AsyncOGXAsLibraryClient
        from ogx.core.request_headers import PROVIDER_DATA_VAR, request_provider_data_context
        from ogx.core.utils.context import preserve_contexts_async_generator
        from ogx.providers.utils.inference import openai_mixin
        from ogx_api import Api
        from ogx_api.inference import OpenAIChatCompletionRequestWithExtraBody

        client = AsyncOGXAsLibraryClient(str(run_config), skip_logger_removal=True)
        await client.initialize()
        impls = client.impls or {}
        conversations = impls.get(Api.conversations)
        api = ogx_api.conversations
        direct = OgxDirectConversations(conversations, api, ITEMS_TABLE) if conversations else None
        internals = StackInternals(
            OpenAIChatCompletionRequestWithExtraBody,
            request_provider_data_context,
            preserve_contexts_async_generator,
            PROVIDER_DATA_VAR,
        )
        inference = impls.get(Api.inference)
        disable_sdk_retries(inference)
        validate_chunks_of(openai_mixin)
        chat = DirectChat(inference, internals) if inference else None
        return OgxClientAdapter(self, client, library=True, direct=direct, chat=chat)

    def open_service(self, url: str, api_key: str | None, timeout: float) -> OgxClientAdapter:
        """See ``Backend``."""
        client = AsyncOgxClient(base_url=url, api_key=api_key, timeout=timeout)
        # The generated client builds its httpx client on first use, with one pool of five
        # connections per CPU; it takes a prepared one (and closes it with itself) instead.
        client.api_client._async_client = service_http_client(url, timeout)
        return OgxClientAdapter(self, client, library=False)

    def inference_provider(self) -> InferenceProviderKit:
        """See ``Backend``."""
        from llama_entra.backends.ogx_provider import OgxProviderKit

        return OgxProviderKit()

    def server_command(self, run_config: Path, port: int | None = None) -> list[str]:
        """See ``Backend``: ``ogx run`` with the per-call fixes (``ogx_server``)."""
        command = [sys.executable, "-m", _SERVER, str(run_config), "--insecure"]
        return [*command, "--port", str(port)] if port is not None else command
