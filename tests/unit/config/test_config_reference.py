"""Unit: the configuration reference comes from the models; the committed page is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from llama_entra.config import LlamaEntraConfig
from llama_entra.config.reference import reference_rows, render_table

ROOT = Path(__file__).resolve().parents[3]


class _Rule(BaseModel):
    role: str = Field(description="A role.")


class _Section(BaseModel):
    level: Literal["a", "b"] = Field("a", description="Pick one.")
    secret: SecretStr | None = Field(None, description="Never shown.")
    rules: list[_Rule] = Field(default_factory=list, description="Rules.")


class _Document(BaseModel):
    section: _Section = Field(default_factory=_Section, description="A section.")
    port: int = Field(description="Required port.")


def test_reference_rows_walk_nested_sections_and_lists_of_sections() -> None:
    rows = {row.key: row for row in reference_rows(_Document)}
    assert list(rows) == [
        "section",
        "section.level",
        "section.secret",
        "section.rules",
        "section.rules[].role",
        "port",
    ]
    assert rows["section.level"].type == "`a` | `b`"
    assert rows["section.secret"].type == "secret (optional)"
    assert rows["port"].default == "required"
    assert rows["section.rules"].type == "list of section"


def test_render_table_escapes_pipes_and_adds_the_variable_column() -> None:
    rows = list(reference_rows(_Document, environment={"port": "PORT"}))
    table = render_table(rows, with_environment=True)
    assert "| `section.level` | `a` \\| `b` | `a` |  | Pick one. |" in table
    assert "| `port` | int | required | `PORT` | Required port. |" in table


def test_every_service_key_with_a_description_is_in_the_reference() -> None:
    rows = list(reference_rows(LlamaEntraConfig))
    assert {"service.state_dir", "azure_entra_id.client_secret", "proxy.upstream"} <= {
        row.key for row in rows
    }
    assert all(row.description for row in rows), [row.key for row in rows if not row.description]


def test_committed_configuration_page_matches_the_models() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
