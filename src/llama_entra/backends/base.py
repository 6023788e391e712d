"""What llama-entra needs from a Llama Stack backend, in one protocol per role.

``Backend`` knows the distribution (llama-stack 0.7.3 or OGX): its header for provider data,
how to open a client in either mode, how to run its server. ``StackClient`` is the one client
of the process seen through a backend-neutral surface: OpenAI-shaped results come back as
plain JSON dicts, listings as small records, and every failure as a ``LlamaEntraError``
(translated where it enters, by the backend's ``translate``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llama_entra.errors import LlamaEntraError

__all__ = [
    "Backend",
    "ConversationRecord",
    "ErrorHook",
    "Headers",
    "InferenceProviderKit",
    "ListedModel",
    "ListedProvider",
    "StackClient",
]

Headers = Mapping[str, str]
JSON = dict[str, Any]
ErrorHook = Callable[[LlamaEntraError], LlamaEntraError]


@dataclass(frozen=True, slots=True)
class ListedModel:
    """A model as Llama Stack lists it."""

    id: str
    provider_id: str
    provider_resource_id: str
    model_type: str


@dataclass(frozen=True, slots=True)
class ListedProvider:
    """A provider as Llama Stack lists it (``config`` as the server reports it)."""

    provider_id: str
    provider_type: str
    config: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """A conversation as Llama Stack stores it: id, creation time (Unix s), metadata."""

    id: str
    created_at: int
    metadata: Mapping[str, str]


class StackClient(Protocol):
    """The Llama Stack client of the process (library or server), backend-neutral."""

    error_hook: ErrorHook | None
    """Sees every error the client raises, after translation, and may replace it (the client
    holder turns a lost database into a 503 naming it)."""

    strict_item_order: bool
    """Whether a conversation's items come back exactly in the order they were added (OGX: a
    per-conversation sequence; llama-stack 0.7.3: a timestamp in whole seconds, so no)."""

    chooses_conversation_ids: bool
    """Whether ``create_conversation`` takes the new conversation's id from the caller
    (library mode, which writes the store itself; a Llama Stack server always mints it)."""

    @property
    def backend(self) -> Backend:
        """The backend this client belongs to."""
        ...

    async def chat_completion(self, params: JSON, headers: Headers) -> JSON:
        """``POST /v1/chat/completions`` without streaming; the completion as JSON."""
        ...

    async def chat_completion_stream(self, params: JSON, headers: Headers) -> AsyncIterator[JSON]:
        """The same, streamed: one JSON chunk at a time, as Llama Stack sends them."""
        ...

    async def create_response(self, params: JSON, headers: Headers) -> JSON:
        """``POST /v1/responses`` without streaming."""
        ...

    async def response_stream(self, params: JSON, headers: Headers) -> AsyncIterator[JSON]:
        """``POST /v1/responses`` streamed: one JSON event at a time."""
        ...

    async def list_models(self) -> list[ListedModel]:
        """Every registered model."""
        ...

    async def list_providers(self) -> list[ListedProvider]:
        """Every configured provider."""
        ...

    async def check_health(self, seconds: float) -> None:
        """Return when the server answers its health call within ``seconds``."""
        ...

    async def create_conversation(
        self,
        metadata: Mapping[str, str] | None = None,
        items: list[JSON] | None = None,
        conversation_id: str | None = None,
    ) -> str:
        """A new conversation with ``metadata`` and ``items`` (in the same call); its id.

        ``conversation_id`` (from ``new_conversation_id``) only where
        ``chooses_conversation_ids``; elsewhere it is a ``ValueError``.
        """
        ...

    async def create_conversation_with_items(
        self,
        metadata: Mapping[str, str],
        items: list[JSON],
        conversation_id: str | None = None,
    ) -> tuple[str, list[str]]:
        """``create_conversation`` with ``items``: its id and the ids of the items as stored,
        oldest first, where the client writes them itself (library mode); else no ids."""
        ...

    async def retrieve_conversation(self, conversation_id: str) -> ConversationRecord:
        """One conversation (``NotFoundError`` if unknown)."""
        ...

    async def update_conversation_metadata(
        self, conversation_id: str, metadata: Mapping[str, str]
    ) -> None:
        """Replace a conversation's metadata (Llama Stack keeps no partial update)."""
        ...

    async def conversation_items(self, conversation_id: str) -> list[JSON]:
        """Every item of the conversation, oldest first, read page by page, as JSON."""
        ...

    async def newest_item_ids(self, conversation_id: str, count: int) -> list[str]:
        """Ids of the conversation's newest ``count`` items, oldest first (``NotFoundError``)."""
        ...

    async def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation."""
        ...

    async def add_conversation_items(self, conversation_id: str, items: list[JSON]) -> list[str]:
        """Append items (in one call) to a conversation; their ids, in order."""
        ...

    async def touch_inference_store(self) -> None:
        """One cheap read of the stored chat completions (creates the store's tables)."""
        ...

    async def aclose(self) -> None:
        """Shut the in-process stack down (library mode) and close the client."""
        ...


class InferenceProviderKit(Protocol):
    """The backend's parts of the ``remote::azure-entra`` provider (``llama_entra.provider``)."""

    def provider_spec(self) -> Any:
        """The backend's ``RemoteProviderSpec`` for the provider."""
        ...

    def create_adapter(self, config: Any) -> Any:
        """A new adapter (the backend's Azure adapter with the Entra ID mixin) for ``config``."""
        ...


class Backend(Protocol):
    """One Llama Stack distribution: llama-stack 0.7.3 or OGX."""

    name: str
    """``llama-stack`` or ``ogx`` (the extra that installs it)."""
    package: str
    """The server's distribution name, for its version."""
    client_package: str
    """The client library's distribution name, for its version."""
    provider_data_header: str
    """The header the server reads per-request provider data from."""
    server_environment: Mapping[str, str]
    """Environment for its server: JSON logs (a console log of an exception stalls it)."""

    async def open_library(self, run_config: Path) -> StackClient:
        """Start the stack in-process on ``run_config`` (already enriched)."""
        ...

    def open_service(self, url: str, api_key: str | None, timeout: float) -> StackClient:
        """A client for a Llama Stack server at ``url``."""
        ...

    def server_command(self, run_config: Path, port: int | None = None) -> list[str]:
        """The command line that serves ``run_config`` over plain HTTP."""
        ...

    def inference_provider(self) -> InferenceProviderKit:
        """The parts of ``remote::azure-entra`` for this backend (imported on first use)."""
        ...
