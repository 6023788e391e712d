"""``create_app(config)``: the FastAPI service. Nothing happens at import time.

The lifespan builds, in order: the inbound authenticator, the Entra token manager (started, but
it makes no Entra call), the Llama Stack client and the client holder, and the token quotas
(counted in the conversation index's database); it closes them in reverse order at shutdown.
Start-up needs neither Entra ID nor Azure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from llama_entra.app.errors import install_error_handlers
from llama_entra.app.metrics import ServiceMetrics
from llama_entra.app.middleware import RequestContextMiddleware
from llama_entra.app.routers import (
    conversations,
    feedback,
    health,
    metrics,
    models,
    openai_compat,
    query,
    root,
    streaming,
)
from llama_entra.auth import Authenticator, build_authenticator, warn_if_exposed
from llama_entra.config import LlamaEntraConfig
from llama_entra.conversations import ConversationStore
from llama_entra.conversations.index import ConversationIndex, SqliteConversationIndex
from llama_entra.conversations.index_postgres import PostgresConversationIndex
from llama_entra.conversations.topics import TopicSummarizer
from llama_entra.entra import TokenManager, create_token_manager
from llama_entra.errors import ConfigError, DatabaseUnavailableError
from llama_entra.identity import create_user_tokens
from llama_entra.quotas import QuotaLimiter, quota_store
from llama_entra.stack import ClientHolder
from llama_entra.stack.build import keep_stack_running, library_database, start_stack
from llama_entra.storage.database import DatabaseTarget, configured_database

__all__ = ["ServiceResources", "create_app", "open_resources"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceResources:
    """What the service holds for its lifetime."""

    authenticator: Authenticator
    tokens: TokenManager | None
    holder: ClientHolder
    conversations: ConversationStore
    quotas: QuotaLimiter


@asynccontextmanager
async def open_resources(
    config: LlamaEntraConfig, *, tokens: TokenManager | None = None
) -> AsyncIterator[ServiceResources]:
    """Build the authenticator, token manager and client holder; close them on exit.

    Raises ``ConfigError`` when the run config cannot start Llama Stack. Makes no Entra call.
    When Llama Stack's database does not answer, the resources open anyway: the holder
    answers 503 naming the database and Llama Stack starts in the background once it answers
    (and restarts after a later outage, see ``keep_stack_running``).
    """
    async with AsyncExitStack() as stack:
        authenticator = build_authenticator(config.authentication)
        stack.push_async_callback(authenticator.aclose)
        warn_if_exposed(config.authentication, config.service.host)
        manager = tokens
        if manager is None and config.azure_entra_id is not None:
            manager = create_token_manager(config.azure_entra_id)
        if manager is not None:
            await manager.start()
            stack.push_async_callback(manager.aclose)
            logger.info("Entra ID: %s (token fetched on first use)", manager.identity)
        database = library_database(config)
        index = conversation_index(config, database)
        stack.push_async_callback(index.aclose)
        holder = ClientHolder(
            config, None, manager, mode=config.llama_stack.mode, database=database
        )
        stack.push_async_callback(holder.aclose)
        holder.users = create_user_tokens(config.azure_entra_id)
        if holder.users is not None:
            stack.push_async_callback(holder.users.aclose)
            logger.info("Azure OpenAI sees each signed-in user (on-behalf-of)")
        if isinstance(index, PostgresConversationIndex) and index.target == database:
            index.on_unavailable = holder.database_lost  # an outage it sees is the stack's too
        try:
            holder.attach(await start_stack(config, database))
        except DatabaseUnavailableError as exc:
            holder.waiting_for = exc
            logger.warning("%s; Llama Stack starts once it answers", exc)
        if database is not None:
            logger.info("Llama Stack's stores: %s", database.label)
            keeper = asyncio.create_task(keep_stack_running(config, holder))
            stack.push_async_callback(_cancel, keeper)
        quotas = QuotaLimiter(config.quota_handlers, quota_store(index))
        if quotas.enabled:
            names = ", ".join(limiter.name for limiter in quotas.limiters)
            logger.info("token quotas: %s (counted in the conversation index's database)", names)
        conversations = ConversationStore(holder, index)
        yield ServiceResources(authenticator, manager, holder, conversations, quotas)


def conversation_index(
    config: LlamaEntraConfig, database: DatabaseTarget | None
) -> ConversationIndex:
    """The index ``conversation_index`` asks for; ``database`` is a library-mode run config's.

    Raises ``ConfigError`` for ``type: postgres`` with no database to put it in.
    """
    wanted = config.conversation_index
    if wanted.type != "sqlite":
        if wanted.postgres is not None:
            database = configured_database(wanted.postgres)
        if database is not None:
            logger.info("conversation index: %s", database.label)
            return PostgresConversationIndex(database)
        if wanted.type == "postgres":
            raise ConfigError(
                "type postgres needs conversation_index.postgres (or a library-mode run config "
                "on PostgreSQL)",
                key="conversation_index.type",
            )
    return SqliteConversationIndex(config.service.state_dir / "conversations.sqlite3")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(
    config: LlamaEntraConfig,
    *,
    resources: ServiceResources | None = None,
    tokens: TokenManager | None = None,
) -> FastAPI:
    """The service for ``config``.

    ``resources`` are used as given (their owner closes them); otherwise the lifespan opens
    them, with ``tokens`` replacing the token manager when given (benchmarks, tests).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            held = resources
            if held is None:
                held = await stack.enter_async_context(open_resources(config, tokens=tokens))
            app.state.authenticator = held.authenticator
            app.state.holder = held.holder
            app.state.users = held.holder.users
            app.state.conversations = held.conversations
            app.state.quotas = held.quotas
            summaries = TopicSummarizer(held.holder, held.conversations)
            # Closed first (the stack unwinds in reverse): pending summaries still have the
            # holder and the store while they finish within the drain limit.
            stack.push_async_callback(summaries.aclose, config.service.shutdown_timeout_seconds)
            app.state.summaries = summaries
            app.state.metrics.attach(held.holder, held.quotas)
            logger.info("llama-entra ready (%s mode)", config.llama_stack.mode)
            yield

    app = FastAPI(
        title="llama-entra",
        summary="Llama Stack on Azure OpenAI with lazy Microsoft Entra ID authentication",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.users = None  # on-behalf-of's per-user tokens, when configured (lifespan)
    app.state.feedback_enabled = config.feedback.enabled  # PUT /v1/feedback/status changes it
    app.state.metrics = ServiceMetrics()
    app.state.metrics_require_auth = config.authentication.model_dump().get(
        "metrics_require_auth", False
    )
    routers = (
        root,
        query,
        streaming,
        conversations,
        feedback,
        openai_compat,
        models,
        health,
        metrics,
    )
    for router_module in routers:
        app.include_router(router_module.router)
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=config.service.max_body_bytes,
        metrics=app.state.metrics,
    )
    return app
