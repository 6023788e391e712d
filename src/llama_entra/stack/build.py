"""Build the one Llama Stack client of the process: in-process library or a remote server.

Library mode enriches the configured run config (so the Azure providers start without a
credential), writes it to a private file under the state directory and starts the active
backend's library client on it. Service mode connects the backend's client to
``llama_stack.url``. Neither talks to Entra ID or Azure.

``start_stack`` also primes the stores (Llama Stack creates tables lazily, without a lock). On
a PostgreSQL run config it first checks the database and does all of it under the database's
start-up lock, so replicas starting together on an empty database never race on
``CREATE TABLE``; ``keep_stack_running`` starts it in the background once the database answers,
and restarts it after the database came back from an outage. Worker processes of one ``serve``
(SQLite files) take turns the same way, on a lock file in the state directory: OGX creates its
indexes without ``IF NOT EXISTS``, and two workers starting on fresh files raced on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from llama_entra.backends import StackClient, active_backend, package_version
from llama_entra.config import LlamaEntraConfig
from llama_entra.enrich import (
    enrich_run_config,
    ensure_tiktoken_cache,
    load_run_config,
    write_enriched,
)
from llama_entra.errors import (
    ConfigError,
    DatabaseUnavailableError,
    LlamaEntraError,
    UpstreamError,
)
from llama_entra.logs import preserved_logging
from llama_entra.preflight import prepare_run_config_dirs
from llama_entra.stack.holder import ClientHolder
from llama_entra.storage.database import DatabaseTarget, find_database, ping, startup_lock

__all__ = [
    "build_stack_client",
    "check_server",
    "create_server_tables",
    "keep_stack_running",
    "library_database",
    "prime_stores",
    "start_stack",
]

logger = logging.getLogger(__name__)
_PING_SECONDS = 5.0
_RETRY_MAX_SECONDS = 15.0
_RESTART_MIN_INTERVAL = 5.0


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


def library_database(config: LlamaEntraConfig) -> DatabaseTarget | None:
    """The PostgreSQL database of the library-mode run config, if its stores use one."""
    run_config = config.llama_stack.config
    if config.llama_stack.mode != "library" or run_config is None:
        return None
    try:
        return find_database(load_run_config(run_config), source=str(run_config))
    except ConfigError as exc:
        raise ConfigError(exc.problem, file=str(run_config), key=exc.key) from exc


async def start_stack(config: LlamaEntraConfig, database: DatabaseTarget | None) -> StackClient:
    """Build the client and prime its stores; with a database, under its start-up lock.

    Raises ``DatabaseUnavailableError`` when the database does not answer (retry later) and
    ``ConfigError`` when Llama Stack cannot start on a database that answers.
    """
    if database is None:
        async with _workers_take_turns(config):
            client = await build_stack_client(config)
            if config.llama_stack.mode == "service":
                await check_server(client, config.llama_stack.url)
            await prime_stores(client)
        return client
    await ping(database, _PING_SECONDS)
    async with startup_lock(database):
        try:
            client = await build_stack_client(config)
        except ConfigError:
            await ping(database, _PING_SECONDS)  # gone meanwhile: not a config mistake
            raise
        await prime_stores(client)
    return client


@contextlib.asynccontextmanager
async def _workers_take_turns(config: LlamaEntraConfig) -> AsyncIterator[None]:
    """One process at a time in the block: an exclusive lock on a file of the state directory
    (the kernel releases it if the process dies). Without a writable state directory, no lock."""
    try:
        lock_file = (config.service.state_dir / "startup.lock").open("a")
    except OSError as exc:
        logger.debug("no start-up lock file (%s): starting without one", exc)
        yield
        return
    with lock_file:
        await asyncio.to_thread(fcntl.flock, lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


async def keep_stack_running(config: LlamaEntraConfig, holder: ClientHolder) -> None:
    """Library mode on PostgreSQL: (re)start Llama Stack whenever the holder asks for it.

    The holder asks when there is no client yet (database down at start-up) and after a call
    failed on the database: llama-stack 0.7.3's key-value stores keep one connection and never
    reconnect, so once the database answers again the in-process stack is shut down and
    started afresh (about as long as a start-up). Attempts back off from 1 s to 15 s.
    """
    database = holder.database
    if database is None:
        return
    while True:
        await holder.restart_needed.wait()
        delay = 1.0
        while True:
            try:
                await ping(database, _PING_SECONDS)
                await holder.detach()  # its stores' connections died with the old server
                client = await start_stack(config, database)
                break
            except DatabaseUnavailableError as exc:
                holder.waiting_for = exc
                logger.info("waiting: %s", exc)
            except ConfigError as exc:
                logger.error("Llama Stack could not start: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_SECONDS)
        holder.attach(client)
        logger.info("%s answers: Llama Stack started", database.label)
        await asyncio.sleep(_RESTART_MIN_INTERVAL)  # a flapping database restarts it rarely


async def create_server_tables(run_config: Path) -> None:
    """Before a Llama Stack server starts on ``run_config`` (enriched): if its stores are on
    PostgreSQL, create their tables once, in-process, under the database's start-up lock.

    Several server replicas starting together on an empty database would otherwise race on
    ``CREATE TABLE``. Raises ``DatabaseUnavailableError`` when the database does not answer.
    """
    database = find_database(load_run_config(run_config), source=str(run_config))
    if database is None:
        return
    await ping(database, _PING_SECONDS)
    async with startup_lock(database):
        with preserved_logging():
            client = await active_backend().open_library(run_config)
        try:
            await prime_stores(client)
        finally:
            await client.aclose()
    logger.info("Llama Stack's tables are ready in %s", database.label)


async def _library_client(config: LlamaEntraConfig, run_config: Path) -> StackClient:
    state_dir = config.service.state_dir
    identity = config.azure_entra_id
    enriched, notes = enrich_run_config(
        load_run_config(run_config),
        entra=identity is not None,
        endpoints=identity.resource_urls() if identity is not None else None,
    )
    for note in notes:
        logger.info("run config: %s", note)
    prepare_run_config_dirs(enriched, source=str(run_config))
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
