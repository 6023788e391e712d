"""Unit: the provider's identity comes from its config or the azure-identity variables."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from llama_entra.backends import active_backend
from llama_entra.config import expand_env
from llama_entra.provider.config import identity_from_environment

ROOT = Path(__file__).resolve().parents[3]
ENV = {
    "AZURE_TENANT_ID": "tenant-env",
    "AZURE_CLIENT_ID": "client-env",
    "AZURE_CLIENT_SECRET": "secret-env",
    "AZURE_AUTHORITY_HOST": "login.example.test",
}


def _config_class() -> Any:
    dotted = active_backend().inference_provider().provider_spec().config_class
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _run_config_provider(environ: dict[str, str]) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "run-configs" / "azure-entra.yaml").read_text())
    [provider] = raw["providers"]["inference"]
    assert provider["provider_type"] == "remote::azure-entra"
    assert provider["module"] == "llama_entra"
    config: dict[str, Any] = _typed(expand_env(provider["config"], environ=environ))
    return config


def _typed(value: Any) -> Any:
    """Llama Stack's env substitution turns "true"/"false" into booleans and "" into None."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    return (
        {"true": True, "false": False, "": None}.get(value, value)
        if isinstance(value, str)
        else value
    )


def test_identity_from_environment_fills_every_unset_key() -> None:
    identity = identity_from_environment({}, ENV)
    assert identity == {
        "tenant_id": "tenant-env",
        "client_id": "client-env",
        "client_secret": "secret-env",
        "authority_host": "https://login.example.test",
        "credential": "client_secret",
    }


def test_identity_from_environment_config_values_win_and_empty_ones_fall_back() -> None:
    identity = identity_from_environment({"tenant_id": "tenant-file", "client_id": ""}, ENV)
    assert identity["tenant_id"] == "tenant-file"
    assert identity["client_id"] == "client-env"


@pytest.mark.parametrize(
    ("environ", "kind"),
    [
        ({"AZURE_CLIENT_CERTIFICATE_PATH": "/c.pem"}, "certificate"),
        ({"AZURE_FEDERATED_TOKEN_FILE": "/var/run/token"}, "workload_identity"),
        ({}, "default"),
    ],
)
def test_identity_from_environment_infers_the_credential_kind(
    environ: dict[str, str], kind: str
) -> None:
    assert identity_from_environment(None, environ)["credential"] == kind


def test_identity_from_environment_rejects_api_base() -> None:
    with pytest.raises(ValueError, match="base_url"):
        identity_from_environment({"api_base": "https://x"}, {})


def test_identity_from_environment_rejects_on_behalf_of() -> None:
    with pytest.raises(ValueError, match="on_behalf_of is not available in remote::azure-entra"):
        identity_from_environment({"user_identity": "on_behalf_of"}, {})


def test_run_config_provider_validates_with_identity_only_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = _config_class()(**_run_config_provider({"AZURE_API_BASE": "https://r/openai/v1"}))
    identity = config.azure_entra_id
    assert (identity.credential, identity.tenant_id, identity.client_id) == (
        "client_secret",
        "tenant-env",
        "client-env",
    )
    assert identity.client_secret.get_secret_value() == "secret-env"
    assert identity.ca_bundle is None  # AZURE_CA_BUNDLE unset: the system CAs
    assert str(config.base_url).startswith("https://r/openai/v1")
    assert "secret-env" not in repr(config)


def test_run_config_provider_without_an_identity_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (*ENV, "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_CREDENTIAL", "client_secret")
    with pytest.raises(ValidationError, match="client_secret needs tenant_id"):
        _config_class()(**_run_config_provider(dict(AZURE_CREDENTIAL="client_secret")))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"api_key": "static-key"}, "api_key is not used"),
        ({"base_url": None}, "base_url is required"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_provider_config_rejects_a_static_key_no_base_url_and_unknown_keys(
    monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any], problem: str
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = {"base_url": "https://r/openai/v1", **changes}
    with pytest.raises(ValidationError, match=problem):
        _config_class()(**config)
