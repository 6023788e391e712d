"""Unit tests of ``llama_entra.storage.database``: finding the database in a run config, naming it,
and telling a lost database apart from other failures (no server needed here; the e2e tests
run a real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import openai
import pytest
import sqlalchemy.exc
import yaml
from pydantic import SecretStr

from llama_entra.errors import ConfigError, DatabaseUnavailableError
from llama_entra.storage.database import DatabaseTarget, database_cause, find_database

ROOT = Path(__file__).resolve().parents[3]
POSTGRES_RUN = yaml.safe_load((ROOT / "run-configs" / "azure-postgres.yaml").read_text())
TARGET = DatabaseTarget("db.example", 5432, "llamastack", "llama", SecretStr("hunter2-secret"))


def test_find_database_reads_llama_stacks_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"POSTGRES_HOST": "pg", "POSTGRES_PORT": "6543", "POSTGRES_DB": "state"}
    env |= {"POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p-secret", "POSTGRES_SSL_MODE": "require"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    target = find_database(POSTGRES_RUN, source="azure-postgres.yaml")
    assert target is not None
    assert (target.host, target.port, target.name, target.user) == ("pg", 6543, "state", "u")
    assert target.ssl_mode == "require" and target.ca_cert_path is None
    assert target.label == "PostgreSQL database 'state' at pg:6543"
    assert "p-secret" not in repr(target) + str(target.describe())


def test_find_database_without_password_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"storage\.backends\.kv_default\.password"):
        find_database(POSTGRES_RUN, source="azure-postgres.yaml")


def test_find_database_is_none_for_sqlite_stores() -> None:
    sqlite_run = yaml.safe_load((ROOT / "run-configs" / "azure.yaml").read_text())
    assert find_database(sqlite_run, source="azure.yaml") is None


def test_database_cause_sees_a_refused_connection_through_sqlalchemy() -> None:
    driver = ConnectionRefusedError(111, "Connect call failed ('10.0.0.1', 5432)")
    wrapped = sqlalchemy.exc.OperationalError("INSERT INTO t VALUES (:secret_param)", {}, driver)
    assert database_cause(wrapped, TARGET) == "connection refused"


def test_database_cause_sees_asyncpg_and_psycopg2_connection_errors() -> None:
    import psycopg2

    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    assert database_cause(lost, TARGET) == "connection was closed in the middle of operation"
    try:
        raise RuntimeError("Could not connect") from psycopg2.OperationalError("server closed")
    except RuntimeError as exc:
        assert database_cause(exc, TARGET) == "server closed"


def test_database_cause_ignores_other_failures() -> None:
    assert database_cause(ValueError("API key not provided"), TARGET) is None
    assert database_cause(FileNotFoundError(2, "no such file"), TARGET) is None


def test_database_cause_ignores_azure_refusing_connections() -> None:
    # Library mode: Azure unreachable is an openai error caused by a refused socket too.
    request = httpx.Request("POST", "https://azure.example/openai/v1/chat/completions")
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as refused:
            raise openai.APIConnectionError(request=request) from refused
    except openai.APIConnectionError as azure:
        assert database_cause(azure, TARGET) is None


def test_database_cause_never_repeats_the_password() -> None:
    error = asyncpg.InvalidPasswordError("password hunter2-secret rejected for user llama")
    cause = database_cause(error, TARGET)
    assert cause is not None and "hunter2-secret" not in cause and "********" in cause


def test_database_unavailable_error_names_the_database() -> None:
    error = DatabaseUnavailableError(TARGET.label, "connection refused")
    expected = "PostgreSQL database 'llamastack' at db.example:5432 unavailable: connection refused"
    assert str(error) == expected
    assert error.status == 503
