"""Unit tests of llama_entra.config: loading, env expansion, validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from llama_entra.config import expand_env, load_config, parse_config
from llama_entra.errors import ConfigError

SECRET_CONFIG = {
    "azure_entra_id": {
        "tenant_id": "tenant",
        "client_id": "client",
        "client_secret": "${env.TEST_SECRET}",
    }
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llama-entra.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.service.port == 8080
    assert config.llama_stack.mode == "library"
    assert config.azure_entra_id is None
    assert config.authentication.module == "noop"


def test_expand_env_uses_value_then_default() -> None:
    env = {"SET": "value", "EMPTY": ""}
    assert expand_env("a-${env.SET}-b", environ=env) == "a-value-b"
    assert expand_env("${env.UNSET:=fallback}", environ=env) == "fallback"
    assert expand_env("${env.EMPTY:=fallback}", environ=env) == "fallback"
    assert expand_env("${env.EMPTY}", environ=env) == ""
    assert expand_env({"k": ["${env.SET}", 3]}, environ=env) == {"k": ["value", 3]}


def test_expand_env_unset_without_default_names_variable_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        expand_env({"a": {"b": "${env.NOPE_NOT_SET}"}}, environ={})
    assert caught.value.key == "a.b"
    assert "NOPE_NOT_SET" in str(caught.value)


def test_parse_config_secret_from_env_is_secretstr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SECRET", "s3cr3t-value")
    config = parse_config(SECRET_CONFIG)
    assert config.azure_entra_id is not None
    assert isinstance(config.azure_entra_id.client_secret, SecretStr)
    assert config.azure_entra_id.client_secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(config)


def test_parse_config_unknown_key_is_rejected_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"service": {"prot": 1}}, source="f.yaml")
    assert str(caught.value) == "f.yaml: service.prot: unknown key"


def test_parse_config_client_secret_credential_without_secret_is_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"azure_entra_id": {"tenant_id": "t", "client_id": "c"}}, source="f.yaml")
    assert "client_secret" in str(caught.value)
    assert caught.value.key == "azure_entra_id"


def test_parse_config_bad_value_error_does_not_echo_input() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"azure_entra_id": {**SECRET_CONFIG["azure_entra_id"], "client_secret": ["x-secret"]}},
            source="f.yaml",
        )
    assert "x-secret" not in str(caught.value)


def test_parse_config_http_authority_is_rejected() -> None:
    with pytest.raises(ConfigError, match="https"):
        parse_config({"azure_entra_id": {"credential": "default", "authority_host": "http://x"}})


def test_load_config_missing_file_and_malformed_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="malformed YAML at line 3"):
        load_config(write(tmp_path, "service:\n  port: [1\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_parse_config_empty_optional_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERT", raising=False)
    raw = {
        "azure_entra_id": {
            **SECRET_CONFIG["azure_entra_id"],
            "client_secret": "s",
            "certificate_path": "${env.CERT:=}",
            "ca_bundle": "",
        }
    }
    entra = parse_config(raw).azure_entra_id
    assert entra is not None
    assert entra.certificate_path is None  # not Path("."), the current directory
    assert entra.ca_bundle is None
    with pytest.raises(ConfigError, match="certificate_path"):
        parse_config({"azure_entra_id": {**raw["azure_entra_id"], "credential": "certificate"}})


def test_proxy_upstreams_order_and_checks() -> None:
    east, west = (
        "https://east.openai.azure.com/openai/v1",
        "https://west.openai.azure.com/openai/v1",
    )
    listed = {"upstream": east, "upstreams": {"base_urls": [west, east + "/"]}}
    assert parse_config({"proxy": listed}).proxy.upstream_urls() == [west, east]
    prepended = {"upstream": east, "upstreams": {"base_urls": [west]}}
    assert parse_config({"proxy": prepended}).proxy.upstream_urls() == [east, west]
    assert parse_config({}).proxy.upstream_urls() == []
    with pytest.raises(ConfigError, match="not an http"):
        parse_config({"proxy": {"upstreams": {"base_urls": ["east.openai.azure.com"]}}})


def _obo_document(authentication: dict[str, object]) -> dict[str, object]:
    return {
        "azure_entra_id": {
            "tenant_id": "t",
            "client_id": "c",
            "client_secret": "s",
            "user_identity": "on_behalf_of",
        },
        "authentication": authentication,
    }


def test_on_behalf_of_refuses_to_start_without_jwk_authentication() -> None:
    with pytest.raises(ConfigError, match="needs authentication module jwk"):
        parse_config(_obo_document({"module": "noop"}))


def test_on_behalf_of_needs_the_object_id_as_principal() -> None:
    jwk = {"jwks_url": "https://idp/keys", "issuer": "https://idp", "audience": ["api://c"]}
    with pytest.raises(ConfigError, match="principal_claim oid"):
        parse_config(_obo_document({"module": "jwk", "jwk": jwk}))
    config = parse_config(_obo_document({"module": "jwk", "jwk": jwk | {"principal_claim": "oid"}}))
    assert config.azure_entra_id is not None
    assert config.azure_entra_id.app_callers == "refuse"
