"""Build the one Llama Stack client of the process: in-process library or a remote server.

Library mode enriches the configured run config (so the Azure providers start without a
credential), writes it to a private file under the state directory and starts the active
backend's library client on it. Service mode connects the backend's client to
``llama_stack.url``. Neither talks to Entra ID or Azure.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from llama_entra.backends import StackClient, active_backend, package_version
from llama_entra.config import LlamaEntraConfig
from llama_entra.enrich import (
    enrich_run_config,
    ensure_tiktoken_cache,
    load_run_config,
    write_enriched,
)
from llama_entra.errors import ConfigError, LlamaEntraError, UpstreamError
from llama_entra.logs import preserved_logging

__all__ = ["build_stack_client", "check_server", "prime_stores"]

logger = logging.getLogger(__name__)


async def build_stack_client(config: LlamaEntraConfig) -> StackClient:
    """The client for ``config.llama_stack.mode``; raises ``ConfigError`` on a bad run config."""
    settings = config.llama_stack
    if settings.mode == "service":
        return active_backend().open_service(
            settings.url,
            settings.api_key.get_secret_value() if settings.api_key else None,
            settings.timeout_seconds,
        )
    if settings.config is None:
        raise ConfigError("library mode needs a run config", key="llama_stack.config")
    return await _library_client(config, settings.config)


async def _library_client(config: LlamaEntraConfig, run_config: Path) -> StackClient:
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
            client = await active_backend().open_library(target)
    except Exception as exc:  # llama-stack raises many kinds for a bad run config
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"Llama Stack could not start: {first_line[:300]}", file=str(run_config)
        ) from exc
    return client


async def check_server(client: StackClient, url: str) -> None:
    """Service mode: say in one line at start-up when the server is down or refuses us.

    A client whose major.minor differs from the server's is answered 426 on every call; this
    names both sides once instead (``/readiness`` repeats it while it lasts).
    """
    backend = client.backend
    try:
        await client.check_health(5.0)
    except UpstreamError as exc:
        if exc.status == 426:
            logger.error(
                "the Llama Stack server at %s refuses %s %s: %s",
                url,
                backend.client_package,
                package_version(backend.client_package),
                exc,
            )
        else:
            logger.warning("the Llama Stack server at %s is not answering yet: %s", url, exc)


async def prime_stores(client: StackClient) -> None:
    """Touch the conversation and inference stores once, before any concurrent request.

    Llama Stack (0.7.3 and OGX) creates SQLite tables lazily on a store's first operation, without a
    lock: concurrent first requests then fail with "no such table". One sequential operation
    per store at start-up creates them. Best effort: a server that is down is not an error here.
    """
    try:
        await client.delete_conversation(await client.create_conversation())
        await client.touch_inference_store()
    except LlamaEntraError as exc:  # start-up must not depend on it
        logger.warning("could not prime Llama Stack's stores: %s", exc)
