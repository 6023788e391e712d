"""The PostgreSQL database behind Llama Stack's stores, as the service sees it.

A run config whose storage backends are ``kv_postgres`` / ``sql_postgres`` (e.g.
``run-configs/azure-postgres.yaml``) shares its state with every replica on the same database.
This module finds that database in the run config (``find_database``), checks that it answers
(``ping``, for readiness and start-up), serialises the start-up of replicas with a PostgreSQL
advisory lock (``startup_lock``: llama-stack creates tables without a lock, and concurrent
``CREATE TABLE`` on an empty database fails in all but one replica), and recognises a lost
database in what a Llama Stack call raised (``database_cause``).

The password is a ``SecretStr``: no label, cause or log line made here contains it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import openai
from pydantic import SecretStr

from llama_entra.config import PostgresConfig, expand_env
from llama_entra.errors import ConfigError, DatabaseUnavailableError

__all__ = [
    "STARTUP_LOCK_KEY",
    "DatabaseTarget",
    "configured_database",
    "database_cause",
    "find_database",
    "open_pool",
    "ping",
    "startup_lock",
    "unavailable",
]

logger = logging.getLogger(__name__)

_POSTGRES_TYPES = ("kv_postgres", "sql_postgres")
# One lock for every replica of every deployment on this database (pg_advisory_lock's bigint).
STARTUP_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"llama-entra:stores").digest()[:8], "big", signed=True
)
_LOCK_WAIT_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """Where the stores live; ``label`` names it for people (never with the password)."""

    host: str
    port: int
    name: str
    user: str
    password: SecretStr | None
    ssl_mode: str | None = None
    ca_cert_path: str | None = None

    @property
    def label(self) -> str:
        """``PostgreSQL database 'NAME' at HOST:PORT``."""
        return f"PostgreSQL database '{self.name}' at {self.host}:{self.port}"

    def describe(self) -> dict[str, Any]:
        """For ``/v1/info``: everything but the password."""
        return {
            "kind": "postgresql",
            "host": self.host,
            "port": self.port,
            "name": self.name,
            "user": self.user,
            "ssl_mode": self.ssl_mode,
        }


def find_database(run_config: Mapping[str, Any], *, source: str) -> DatabaseTarget | None:
    """The PostgreSQL database of ``run_config``'s storage backends, or ``None`` if it has none.

    Environment placeholders are expanded as Llama Stack expands them. Every PostgreSQL
    backend of the run configs here points at one database; the first one found is used.
    Raises ``ConfigError`` naming the key when a backend's connection fields are invalid.
    """
    backends = (run_config.get("storage") or {}).get("backends") or {}
    for name, backend in backends.items():
        if not isinstance(backend, Mapping) or backend.get("type") not in _POSTGRES_TYPES:
            continue
        path = f"storage.backends.{name}"
        fields = expand_env(dict(backend), path=path)
        try:
            port = int(fields.get("port") or 5432)
        except ValueError as exc:
            raise ConfigError("port is not a number", file=source, key=f"{path}.port") from exc
        password = fields.get("password")
        return DatabaseTarget(
            host=str(fields.get("host") or "localhost"),
            port=port,
            name=str(fields.get("db") or "llamastack"),
            user=str(fields.get("user") or ""),
            password=SecretStr(str(password)) if password else None,
            ssl_mode=str(fields["ssl_mode"]) if fields.get("ssl_mode") else None,
            ca_cert_path=str(fields["ca_cert_path"]) if fields.get("ca_cert_path") else None,
        )
    return None


def configured_database(config: PostgresConfig) -> DatabaseTarget:
    """The database a ``postgres:`` section of the service config names."""
    return DatabaseTarget(
        host=config.host,
        port=config.port,
        name=config.db,
        user=config.user,
        password=config.password,
        ssl_mode=config.ssl_mode,
        ca_cert_path=str(config.ca_cert_path) if config.ca_cert_path else None,
    )


def _ssl(target: DatabaseTarget) -> ssl.SSLContext | str | None:
    """asyncpg's ``ssl`` argument; ``None`` lets libpq's PGSSLMODE / PGSSLROOTCERT decide."""
    if target.ssl_mode in ("verify-ca", "verify-full") and target.ca_cert_path:
        context = ssl.create_default_context(cafile=target.ca_cert_path)
        context.check_hostname = target.ssl_mode == "verify-full"
        return context
    return target.ssl_mode


def _login(target: DatabaseTarget) -> dict[str, Any]:
    """asyncpg's connection arguments for ``target``."""
    return {
        "host": target.host,
        "port": target.port,
        "user": target.user,
        "password": target.password.get_secret_value() if target.password else None,
        "database": target.name,
        "ssl": _ssl(target),
    }


async def _connect(target: DatabaseTarget, seconds: float) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(**_login(target), timeout=seconds)
    except Exception as exc:
        raise DatabaseUnavailableError(target.label, _cause(exc, target)) from exc


async def open_pool(target: DatabaseTarget, *, max_size: int = 4) -> asyncpg.Pool:
    """A small connection pool to ``target`` (connections open on demand, idle ones close).

    Raises ``DatabaseUnavailableError`` when the first connection cannot be made.
    """
    try:
        return await asyncpg.create_pool(
            **_login(target),
            timeout=10,
            min_size=1,
            max_size=max_size,
            max_inactive_connection_lifetime=60,
        )
    except Exception as exc:
        raise DatabaseUnavailableError(target.label, _cause(exc, target)) from exc


def unavailable(exc: BaseException, target: DatabaseTarget) -> DatabaseUnavailableError:
    """``exc``, raised by a driver talking to ``target``, as a ``DatabaseUnavailableError``."""
    cause = database_cause(exc, target) or _cause(exc, target)
    return DatabaseUnavailableError(target.label, cause)


async def ping(target: DatabaseTarget, seconds: float) -> None:
    """Raise ``DatabaseUnavailableError`` unless the database answers ``SELECT 1`` in time."""
    try:
        async with asyncio.timeout(seconds):
            connection = await _connect(target, seconds)
            try:
                await connection.fetchval("SELECT 1")
            finally:
                await connection.close(timeout=seconds)
    except TimeoutError as exc:
        raise DatabaseUnavailableError(target.label, f"no answer within {seconds:g} s") from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseUnavailableError(target.label, _cause(exc, target)) from exc


@contextlib.asynccontextmanager
async def startup_lock(target: DatabaseTarget) -> AsyncIterator[None]:
    """Hold the database-wide start-up lock for the block (one replica at a time).

    A session-level advisory lock on a connection of its own: if the process dies, the
    server drops the connection and the lock with it. Raises ``DatabaseUnavailableError``
    when the database cannot be reached or the lock is not had within two minutes.
    """
    connection = await _connect(target, seconds=10)
    try:
        try:
            async with asyncio.timeout(_LOCK_WAIT_SECONDS):
                await connection.execute("SELECT pg_advisory_lock($1)", STARTUP_LOCK_KEY)
        except TimeoutError as exc:
            raise DatabaseUnavailableError(
                target.label, f"start-up lock not free within {_LOCK_WAIT_SECONDS:g} s"
            ) from exc
        except (asyncpg.PostgresError, OSError) as exc:
            raise DatabaseUnavailableError(target.label, _cause(exc, target)) from exc
        logger.debug("holding the start-up lock of %s", target.label)
        yield
    finally:
        with contextlib.suppress(Exception):  # closing the session releases the lock anyway
            await connection.close(timeout=5)


def database_cause(exc: BaseException, target: DatabaseTarget) -> str | None:
    """Why the database failed, when ``exc`` (or what caused it) says it did; else ``None``.

    Connection-level failures only: refused, reset, unreachable, timed out, shutting down,
    authentication. Never SQL text or parameters (SQLAlchemy's messages carry them). A chain
    that passes through an HTTP client error is Azure's or a server's, never the database's.
    """
    for link in _chain(exc):
        if isinstance(link, _HTTP_ERRORS):
            return None
        if isinstance(link, _NETWORK_ERRORS) or _is_multiple_connect_failure(link):
            return _cause(link, target)
        if isinstance(link, _ASYNCPG_ERRORS):
            return _cause(link, target)
        if type(link).__module__.startswith("psycopg2") and type(link).__name__ in (
            "OperationalError",
            "InterfaceError",
        ):
            return _cause(link, target)
    return None


_NETWORK_ERRORS = (ConnectionError, socket.gaierror, TimeoutError)
_HTTP_ERRORS = (httpx.HTTPError, openai.OpenAIError)
_ASYNCPG_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.AdminShutdownError,
    asyncpg.InvalidCatalogNameError,
)


def _is_multiple_connect_failure(exc: BaseException) -> bool:
    # asyncio's create_connection raises a plain OSError when every address refused.
    text = str(exc)
    return type(exc) is OSError and ("Connect call failed" in text or "Multiple exceptions" in text)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, then its causes: SQLAlchemy's ``orig``, else ``__cause__`` or ``__context__``."""
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in links and len(links) < 10:
        links.append(current)
        orig = getattr(current, "orig", None)
        current = (
            orig if isinstance(orig, BaseException) else current.__cause__ or current.__context__
        )
    return links


def _cause(exc: BaseException, target: DatabaseTarget) -> str:
    if isinstance(exc, ConnectionRefusedError) or _is_multiple_connect_failure(exc):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"host {target.host} not found"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionError):
        return "connection lost"
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if target.password is not None:  # drivers do not echo it; be sure anyway
        text = text.replace(target.password.get_secret_value(), "********")
    return text or type(exc).__name__
