"""Build the one Llama Stack client of the process: in-process library or a remote server.

Library mode enriches the configured run config (so the Azure providers start without a
credential), writes it to a private file under the state directory and initialises
``AsyncLlamaStackAsLibraryClient`` on it. Service mode connects ``AsyncLlamaStackClient`` to
``llama_stack.url``. Neither talks to Entra ID or Azure.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import cast

from llama_stack_client import AsyncLlamaStackClient

from llama_entra.config import LlamaEntraConfig
from llama_entra.enrich import (
    enrich_run_config,
    ensure_tiktoken_cache,
    load_run_config,
    write_enriched,
)
from llama_entra.errors import ConfigError
from llama_entra.logs import preserved_logging

__all__ = ["build_stack_client", "prime_stores"]

logger = logging.getLogger(__name__)


async def build_stack_client(config: LlamaEntraConfig) -> AsyncLlamaStackClient:
    """The client for ``config.llama_stack.mode``; raises ``ConfigError`` on a bad run config."""
    settings = config.llama_stack
    if settings.mode == "service":
        return AsyncLlamaStackClient(
            base_url=settings.url,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            timeout=settings.timeout_seconds,
            max_retries=2,  # a server drops the keep-alive connection after an upstream 401
        )
    if settings.config is None:
        raise ConfigError("library mode needs a run config", key="llama_stack.config")
    return await _library_client(config, settings.config)


async def _library_client(config: LlamaEntraConfig, run_config: Path) -> AsyncLlamaStackClient:
    from llama_stack.core.library_client import AsyncLlamaStackAsLibraryClient

    state_dir = config.service.state_dir
    enriched, notes = enrich_run_config(
        load_run_config(run_config), entra=config.azure_entra_id is not None
    )
    for note in notes:
        logger.info("run config: %s", note)
    target = state_dir / "run-enriched.yaml"
    write_enriched(enriched, target)
    # The builtin Responses provider loads tiktoken's encoding; offline it must be local.
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or str(state_dir / "tiktoken")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(ensure_tiktoken_cache(cache))
    try:
        with preserved_logging():
            client = AsyncLlamaStackAsLibraryClient(str(target), skip_logger_removal=True)
            await client.initialize()
    except Exception as exc:  # llama-stack raises many kinds for a bad run config
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"Llama Stack could not start: {first_line[:300]}", file=str(run_config)
        ) from exc
    return cast(AsyncLlamaStackClient, client)


async def prime_stores(client: AsyncLlamaStackClient) -> None:
    """Touch the conversation and inference stores once, before any concurrent request.

    llama-stack 0.7.3 creates SQLite tables lazily on a store's first operation, without a
    lock: concurrent first requests then fail with "no such table". One sequential operation
    per store at start-up creates them. Best effort: a server that is down is not an error here.
    """
    try:
        conversation = await client.conversations.create()
        await client.conversations.delete(conversation.id)
        await client.chat.completions.list(limit=1)
    except Exception as exc:  # start-up must not depend on it
        logger.warning("could not prime Llama Stack's stores: %s", type(exc).__name__)
