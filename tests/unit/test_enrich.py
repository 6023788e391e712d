"""Unit tests of the run-config enricher, its CLI and the tiktoken cache helper."""

from __future__ import annotations

import copy
import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_entra.enrich import (
    azure_providers,
    enrich_run_config,
    ensure_tiktoken_cache,
    load_run_config,
    main,
    write_enriched,
)
from llama_entra.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _run_config() -> dict[str, Any]:
    return {
        "version": 2,
        "apis": ["inference"],
        "providers": {
            "inference": [
                {
                    "provider_id": "azure",
                    "provider_type": "remote::azure",
                    "config": {"base_url": "${env.AZURE_API_BASE}", "api_key": "${env.KEY:=}"},
                },
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"api_key": "k"},
                },
            ]
        },
        "registered_resources": {
            "models": [
                {"model_id": "gpt", "provider_id": "azure", "model_type": "llm"},
                {"model_id": "llama", "provider_id": "vllm", "model_type": "llm"},
            ]
        },
    }


def test_enrich_azure_provider_loses_key_and_refresh_models_validation_off() -> None:
    enriched, notes = enrich_run_config(_run_config(), entra=True)
    azure = enriched["providers"]["inference"][0]["config"]
    assert azure == {"base_url": "${env.AZURE_API_BASE}", "refresh_models": False}
    models = enriched["registered_resources"]["models"]
    assert models[0]["model_validation"] is False
    assert "model_validation" not in models[1]
    assert enriched["providers"]["inference"][1] == _run_config()["providers"]["inference"][1]
    assert any("removed api_key from provider azure" in note for note in notes)


def test_enrich_without_entra_only_makes_sure_conversations_are_served() -> None:
    original = _run_config()
    enriched, notes = enrich_run_config(original, entra=False)
    assert enriched == original | {"apis": ["inference", "conversations"]}
    assert original["apis"] == ["inference"]  # a copy, the input untouched
    assert notes == ["added conversations to apis: llama-entra keeps query history there"]


@pytest.mark.parametrize(
    ("apis", "expected"),
    [
        (["inference", "responses"], ["inference", "responses", "conversations"]),
        (["inference", "conversations"], ["inference", "conversations"]),
        (None, None),  # no list: every backend serves everything it has
    ],
)
def test_enrich_adds_conversations_to_an_explicit_apis_list(
    apis: list[str] | None, expected: list[str] | None
) -> None:
    original = _run_config()
    if apis is None:
        del original["apis"]
    else:
        original["apis"] = apis
    enriched, _ = enrich_run_config(original, entra=True)
    assert enriched.get("apis") == expected


def test_enrich_never_mutates_its_input_and_is_idempotent() -> None:
    original = _run_config()
    before = copy.deepcopy(original)
    once, _ = enrich_run_config(original, entra=True)
    twice, notes = enrich_run_config(once, entra=True)
    assert original == before
    assert twice == once and notes == []


def test_enrich_handles_top_level_models_and_missing_provider_config() -> None:
    config = {
        "providers": {"inference": [{"provider_id": "a", "provider_type": "remote::azure"}]},
        "models": [{"model_id": "m", "provider_id": "a"}],
    }
    enriched, _ = enrich_run_config(config, entra=True)
    assert enriched["providers"]["inference"][0]["config"] == {"refresh_models": False}
    assert enriched["models"][0]["model_validation"] is False


def _storage() -> dict[str, Any]:
    """Storage backends as a user writes them from Llama Stack's docs (no pool_pre_ping)."""
    return {
        "backends": {
            "kv_default": {"type": "kv_sqlite", "db_path": "/state/kvstore.db"},
            "sql_default": {"type": "sql_sqlite", "db_path": "/state/sql_store.db"},
            "sql_pinged": {"type": "sql_sqlite", "db_path": "/s.db", "pool_pre_ping": True},
            "sql_pg": {"type": "sql_postgres", "host": "db"},
        },
        "stores": {"conversations": {"table_name": "c", "backend": "sql_default"}},
    }


@pytest.mark.parametrize("entra", [True, False])
def test_enrich_turns_pool_pre_ping_off_on_sqlite_backends_that_do_not_set_it(
    entra: bool,
) -> None:
    original = _run_config() | {"storage": _storage()}
    enriched, notes = enrich_run_config(original, entra=entra)
    backends = enriched["storage"]["backends"]
    assert backends["sql_default"] == _storage()["backends"]["sql_default"] | {
        "pool_pre_ping": False
    }
    assert backends["sql_pinged"]["pool_pre_ping"] is True  # the user's choice stays
    assert "pool_pre_ping" not in backends["sql_pg"]  # PostgreSQL connections can go stale
    assert "pool_pre_ping" not in backends["kv_default"]
    assert enriched["storage"]["stores"] == _storage()["stores"]
    assert "pool_pre_ping" not in original["storage"]["backends"]["sql_default"]  # a copy
    assert [n for n in notes if "pool_pre_ping" in n] == [
        "set pool_pre_ping: false on SQLite store backend sql_default: a local file's "
        "connection cannot go stale"
    ]
    assert enrich_run_config(enriched, entra=entra)[0] == enriched


def _starter_storage(db_path: str) -> dict[str, Any]:
    """Llama Stack's starter layout: every SQL store, and a provider, on one SQLite backend."""
    return {
        "backends": {"sql_default": {"type": "sql_sqlite", "db_path": db_path}},
        "stores": {
            "inference": {"table_name": "inference_store", "backend": "sql_default"},
            "conversations": {"table_name": "openai_conversations", "backend": "sql_default"},
        },
    }


def test_enrich_moves_a_shared_sqlite_inference_store_to_its_own_file() -> None:
    original = _run_config() | {"storage": _starter_storage("${env.DIR:=/state}/sql_store.db")}
    enriched, notes = enrich_run_config(original, entra=False)
    storage = enriched["storage"]
    assert storage["backends"]["sql_default_inference"] == {
        "type": "sql_sqlite",
        "db_path": "${env.DIR:=/state}/inference_store.db",
        "pool_pre_ping": False,
    }
    assert storage["stores"]["inference"] == {
        "table_name": "inference_store",
        "backend": "sql_default_inference",
    }
    assert storage["stores"]["conversations"]["backend"] == "sql_default"
    assert storage["backends"]["sql_default"]["db_path"] == "${env.DIR:=/state}/sql_store.db"
    assert original["storage"]["stores"]["inference"]["backend"] == "sql_default"  # a copy
    assert any("moved the inference store" in note for note in notes)
    assert enrich_run_config(enriched, entra=False) == (enriched, [])


def test_enrich_leaves_an_inference_store_alone_unless_it_shares_a_sqlite_file() -> None:
    alone = _starter_storage("/state/sql_store.db")
    del alone["stores"]["conversations"]  # nothing else on its backend
    in_memory = _starter_storage(":memory:")
    postgres = _starter_storage("/unused")
    postgres["backends"]["sql_default"] = {"type": "sql_postgres", "host": "db"}
    for storage in (alone, in_memory, postgres):
        enriched, _ = enrich_run_config(_run_config() | {"storage": storage}, entra=False)
        assert enriched["storage"]["stores"] == storage["stores"]
        assert set(enriched["storage"]["backends"]) == {"sql_default"}


def test_enrich_counts_a_provider_on_the_backend_as_sharing_it() -> None:
    storage = _starter_storage("sql_store.db")
    del storage["stores"]["conversations"]
    files = {"provider_id": "f", "provider_type": "inline::localfs", "config": {}}
    files["config"] = {"metadata_store": {"table_name": "files", "backend": "sql_default"}}
    original = _run_config() | {"storage": storage}
    original["providers"]["files"] = [files]
    enriched, _ = enrich_run_config(original, entra=False)
    assert enriched["storage"]["backends"]["sql_default_inference"]["db_path"] == (
        "inference_store.db"
    )


def test_shipped_run_config_has_one_azure_provider_and_enriches_cleanly() -> None:
    run_config = load_run_config(ROOT / "run-configs" / "azure.yaml")
    assert [p["provider_id"] for p in azure_providers(run_config)] == ["azure"]
    enriched, _ = enrich_run_config(run_config, entra=True)
    assert "api_key" not in azure_providers(enriched)[0]["config"]
    assert enriched["storage"] == run_config["storage"]  # already tuned as the enricher tunes


@pytest.mark.parametrize("name", ["azure-postgres.yaml", "azure-entra.yaml"])
def test_shipped_run_configs_storage_is_already_as_the_enricher_makes_it(name: str) -> None:
    run_config = load_run_config(ROOT / "run-configs" / name)
    enriched, _ = enrich_run_config(run_config, entra=True)
    assert enriched["storage"] == run_config["storage"]


_names = st.text(alphabet="abcdefghij-", min_size=1, max_size=6)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), _names)
_provider_types = st.sampled_from(["remote::azure", "remote::vllm", "inline::localfs"])
_providers = st.lists(
    st.fixed_dictionaries(
        {
            "provider_id": _names,
            "provider_type": _provider_types,
            "config": st.dictionaries(
                st.sampled_from(["api_key", "base_url", "refresh_models", "x"]), _scalars
            ),
        }
    ),
    max_size=4,
)
_models = st.lists(
    st.fixed_dictionaries(
        {"model_id": _names, "provider_id": _names},
        optional={"model_validation": st.booleans()},
    ),
    max_size=4,
)
_run_configs = st.fixed_dictionaries(
    {
        "providers": st.fixed_dictionaries(
            {"inference": _providers}, optional={"files": _providers}
        ),
        "registered_resources": st.fixed_dictionaries({"models": _models}),
    },
    optional={"server": st.dictionaries(_names, _scalars, max_size=3)},
)


@settings(max_examples=200, deadline=None)
@given(_run_configs)
def test_enrich_property_idempotent_and_local_to_azure(run_config: dict[str, Any]) -> None:
    before = copy.deepcopy(run_config)
    once, _ = enrich_run_config(run_config, entra=True)
    assert run_config == before
    assert enrich_run_config(once, entra=True)[0] == once
    azure_ids = {
        p["provider_id"]
        for p in run_config["providers"]["inference"]
        if p["provider_type"] == "remote::azure"
    }
    for old, new in zip(
        run_config["providers"]["inference"], once["providers"]["inference"], strict=True
    ):
        if old["provider_type"] != "remote::azure":
            assert new == old
        else:
            expected = {k: v for k, v in old["config"].items() if k != "api_key"}
            assert new["config"] == expected | {"refresh_models": False}
    assert once["providers"].get("files") == run_config["providers"].get("files")
    assert once.get("server") == run_config.get("server")
    for old_model, new_model in zip(
        run_config["registered_resources"]["models"],
        once["registered_resources"]["models"],
        strict=True,
    ):
        if old_model["provider_id"] in azure_ids:
            assert new_model == old_model | {"model_validation": False}
        else:
            assert new_model == old_model


def test_write_enriched_is_private_and_round_trips(tmp_path: Path) -> None:
    target = tmp_path / "out" / "run.yaml"
    write_enriched(_run_config(), target)
    assert yaml.safe_load(target.read_text()) == _run_config()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["run.yaml"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "file not found"),
        ("a: [unclosed", "malformed YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("providers: [1, 2]\n", "providers"),
    ],
)
def test_load_run_config_bad_input_is_config_error(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "run.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=problem) as caught:
        load_run_config(path)
    assert str(path) in str(caught.value)


def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "run.yaml"
    bad.write_text("a: [unclosed")
    out = tmp_path / "out.yaml"
    assert main(["--entra", "-i", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "malformed YAML at line 1" in err
    assert not out.exists()


def test_cli_with_service_config_enriches_and_explains_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = tmp_path / "llama-entra.yaml"
    service.write_text(
        "azure_entra_id: {tenant_id: t, client_id: c, client_secret: very-secret-value}\n"
    )
    source = tmp_path / "run.yaml"
    source.write_text(yaml.safe_dump(_run_config()))
    out = tmp_path / "out.yaml"
    assert main(["-c", str(service), "-i", str(source), "-o", str(out)]) == 0
    written = yaml.safe_load(out.read_text())
    assert written == enrich_run_config(_run_config(), entra=True)[0]
    err = capsys.readouterr().err
    assert "removed api_key from provider azure" in err
    assert "very-secret-value" not in err


def test_cli_service_config_without_entra_leaves_azure_providers_unchanged(
    tmp_path: Path,
) -> None:
    service = tmp_path / "llama-entra.yaml"
    service.write_text("service: {port: 9000}\n")
    source = tmp_path / "run.yaml"
    source.write_text(yaml.safe_dump(_run_config()))
    out = tmp_path / "out.yaml"
    assert main(["-c", str(service), "-i", str(source), "-o", str(out)]) == 0
    written = yaml.safe_load(out.read_text())
    assert written == _run_config() | {"apis": ["inference", "conversations"]}


def test_ensure_tiktoken_cache_installs_the_verified_encoding(tmp_path: Path) -> None:
    cache = ensure_tiktoken_cache(tmp_path / "tk")
    target = cache / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert digest == "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    assert ensure_tiktoken_cache(cache) == cache  # idempotent


def test_enrich_adds_a_provider_and_model_copies_per_further_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_API_BASE", "https://east.openai.azure.com/openai/v1/")
    urls = [
        "https://east.openai.azure.com/openai/v1",  # the provider's own: not added twice
        "https://sweden.openai.azure.com/openai/v1",
        "https://norway.openai.azure.com/openai/v1",
    ]
    enriched, notes = enrich_run_config(_run_config(), entra=True, endpoints={"azure": urls})
    providers = {p["provider_id"]: p for p in enriched["providers"]["inference"]}
    assert set(providers) == {"azure", "vllm", "azure-resource-2", "azure-resource-3"}
    assert providers["azure-resource-2"]["config"]["base_url"] == urls[1]
    assert "api_key" not in providers["azure-resource-3"]["config"]
    assert providers["azure-resource-3"]["config"]["refresh_models"] is False
    copies = [
        (m["provider_id"], m["model_id"], m["model_validation"])
        for m in enriched["registered_resources"]["models"]
        if m["provider_id"].startswith("azure-")
    ]
    assert copies == [("azure-resource-2", "gpt", False), ("azure-resource-3", "gpt", False)]
    assert sum("added provider" in note for note in notes) == 2
    again, _ = enrich_run_config(enriched, entra=True, endpoints={"azure": urls})
    assert again == enriched  # enriching twice adds nothing


def test_enrich_endpoints_of_an_unknown_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"azure_entra_id\.endpoints\.nope"):
        enrich_run_config(_run_config(), entra=True, endpoints={"nope": ["https://x/openai/v1"]})
