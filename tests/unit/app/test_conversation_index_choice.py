"""Unit tests: which conversation index the service config asks for (no database is opened)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from llama_entra.app.main import conversation_index
from llama_entra.config import parse_config
from llama_entra.conversations.index import SqliteConversationIndex
from llama_entra.conversations.index_postgres import PostgresConversationIndex
from llama_entra.errors import ConfigError
from llama_entra.storage.database import DatabaseTarget

RUN_CONFIG_DB = DatabaseTarget("run-db", 5432, "stores", "llama", SecretStr("pw"))
OWN_DB = {"host": "index-db", "port": 6543, "db": "index", "user": "u", "password": "p-secret"}


def _config(tmp_path: Path, **sections: Any) -> Any:
    return parse_config({"service": {"state_dir": str(tmp_path)}, **sections})


def test_auto_is_sqlite_in_the_state_dir_without_a_database(tmp_path: Path) -> None:
    index = conversation_index(_config(tmp_path), None)
    assert isinstance(index, SqliteConversationIndex)
    assert index.path == tmp_path / "conversations.sqlite3"


def test_auto_follows_a_library_mode_run_config_on_postgres(tmp_path: Path) -> None:
    index = conversation_index(_config(tmp_path), RUN_CONFIG_DB)
    assert isinstance(index, PostgresConversationIndex) and index.target is RUN_CONFIG_DB


def test_an_own_postgres_section_wins_and_keeps_its_password_secret(tmp_path: Path) -> None:
    config = _config(tmp_path, conversation_index={"postgres": OWN_DB})
    assert "p-secret" not in repr(config)
    index = conversation_index(config, RUN_CONFIG_DB)
    assert isinstance(index, PostgresConversationIndex)
    assert index.target.label == "PostgreSQL database 'index' at index-db:6543"
    assert index.target.password is not None
    assert index.target.password.get_secret_value() == "p-secret"


def test_a_postgres_section_with_an_empty_host_counts_as_absent(tmp_path: Path) -> None:
    config = _config(tmp_path, conversation_index={"postgres": {**OWN_DB, "host": ""}})
    assert config.conversation_index.postgres is None
    assert isinstance(conversation_index(config, None), SqliteConversationIndex)


def test_sqlite_can_be_forced_beside_a_postgres_run_config(tmp_path: Path) -> None:
    config = _config(tmp_path, conversation_index={"type": "sqlite"})
    assert isinstance(conversation_index(config, RUN_CONFIG_DB), SqliteConversationIndex)


def test_postgres_without_a_database_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    config = _config(tmp_path, conversation_index={"type": "postgres"})
    with pytest.raises(ConfigError) as raised:
        conversation_index(config, None)
    assert raised.value.key == "conversation_index.type"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"type": "mysql"}, "conversation_index.type"),
        ({"postgres": {"host": "h"}}, "conversation_index.postgres.user"),
        ({"postgres": {**OWN_DB, "ssl_mode": "sometimes"}}, "conversation_index.postgres.ssl_mode"),
    ],
)
def test_bad_sections_name_the_key(tmp_path: Path, section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _config(tmp_path, conversation_index=section)
    assert raised.value.key == key
