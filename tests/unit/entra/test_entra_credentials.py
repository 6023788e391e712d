"""Unit tests of building azure-identity credentials from config (class, arguments, precedence)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import trustme
from azure.identity import CertificateCredential as SyncCertificateCredential
from azure.identity import aio

from llama_entra.config import AzureEntraIdConfig
from llama_entra.entra import ThreadedCredential, build_credential, credentials, resolve_identity

ENV_VARS = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENV_VARS, "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cert_file(tmp_path: Path) -> Path:
    ca = trustme.CA()
    leaf = ca.issue_cert("client.example", key_type=trustme.KeyType.RSA)
    path = tmp_path / "client.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


class Recorder:
    """Stands in for an azure-identity class and records how it was called."""

    calls: ClassVar[list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = []

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Recorder:
        Recorder.calls.append((self.name, args, kwargs))
        return self


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    Recorder.calls = []
    for name in (
        "ClientSecretCredential",
        "CertificateCredential",
        "SyncCertificateCredential",
        "ManagedIdentityCredential",
        "WorkloadIdentityCredential",
        "DefaultAzureCredential",
    ):
        monkeypatch.setattr(credentials, name, Recorder(name))
    return Recorder.calls


def test_build_client_secret_passes_authority_ca_bundle_and_no_retries(
    recorded: list[Any], tmp_path: Path
) -> None:
    config = AzureEntraIdConfig.model_validate(
        {
            "tenant_id": "t",
            "client_id": "c",
            "client_secret": "s3cr3t",
            "authority_host": "https://127.0.0.1:8443/",
            "ca_bundle": str(tmp_path / "ca.pem"),
        }
    )
    build_credential(config)
    assert recorded == [
        (
            "ClientSecretCredential",
            ("t", "c", "s3cr3t"),
            {
                "authority": "https://127.0.0.1:8443",
                "retry_total": 0,
                "connection_verify": str(tmp_path / "ca.pem"),
            },
        )
    ]


def test_build_certificate_uses_aio_class_with_password(recorded: list[Any]) -> None:
    config = AzureEntraIdConfig.model_validate(
        {
            "credential": "certificate",
            "tenant_id": "t",
            "client_id": "c",
            "certificate_path": "/certs/app.pfx",
            "certificate_password": "pw",
        }
    )
    build_credential(config)
    name, args, kwargs = recorded[0]
    assert (name, args) == ("CertificateCredential", ("t", "c"))
    assert kwargs == {
        "certificate_path": "/certs/app.pfx",
        "password": "pw",
        "authority": "https://login.microsoftonline.com",
        "retry_total": 0,
    }


def test_build_certificate_with_chain_wraps_sync_class_in_thread_adapter(
    recorded: list[Any],
) -> None:
    config = AzureEntraIdConfig.model_validate(
        {
            "credential": "certificate",
            "tenant_id": "t",
            "client_id": "c",
            "certificate_path": "/certs/app.pem",
            "send_certificate_chain": True,
            "authority_host": "https://127.0.0.1:8443",
        }
    )
    built = build_credential(config)
    assert isinstance(built, ThreadedCredential)
    name, _, kwargs = recorded[0]
    assert name == "SyncCertificateCredential"
    assert kwargs["send_certificate_chain"] is True
    assert kwargs["disable_instance_discovery"] is True  # not a public cloud


def test_build_certificate_chain_keeps_instance_discovery_for_public_cloud(
    recorded: list[Any],
) -> None:
    config = AzureEntraIdConfig.model_validate(
        {
            "credential": "certificate",
            "tenant_id": "t",
            "client_id": "c",
            "certificate_path": "/certs/app.pem",
            "send_certificate_chain": True,
            "authority_host": "https://login.microsoftonline.us",
        }
    )
    build_credential(config)
    assert recorded[0][2]["disable_instance_discovery"] is False


def test_build_managed_identity_system_assigned_and_user_assigned(recorded: list[Any]) -> None:
    build_credential(AzureEntraIdConfig(credential="managed_identity"))
    build_credential(AzureEntraIdConfig(credential="managed_identity", client_id="uami-1"))
    assert recorded == [
        ("ManagedIdentityCredential", (), {"client_id": None}),
        ("ManagedIdentityCredential", (), {"client_id": "uami-1"}),
    ]


def test_build_workload_identity_reads_standard_env_vars(
    recorded: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "env-tenant")
    monkeypatch.setenv("AZURE_CLIENT_ID", "env-client")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "https://login.chinacloudapi.cn/")
    build_credential(AzureEntraIdConfig(credential="workload_identity"))
    assert recorded == [
        (
            "WorkloadIdentityCredential",
            (),
            {
                "tenant_id": "env-tenant",
                "client_id": "env-client",
                "token_file_path": "/var/run/token",
                "authority": "https://login.chinacloudapi.cn",
                "retry_total": 0,
            },
        )
    ]


def test_build_workload_identity_config_wins_over_env_vars(
    recorded: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "env-tenant")
    monkeypatch.setenv("AZURE_CLIENT_ID", "env-client")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "https://login.chinacloudapi.cn")
    config = AzureEntraIdConfig.model_validate(
        {
            "credential": "workload_identity",
            "tenant_id": "cfg-tenant",
            "client_id": "cfg-client",
            "federated_token_file": "/cfg/token",
            "authority_host": "https://login.microsoftonline.us",
        }
    )
    build_credential(config)
    kwargs = recorded[0][2]
    assert (kwargs["tenant_id"], kwargs["client_id"], kwargs["token_file_path"]) == (
        "cfg-tenant",
        "cfg-client",
        "/cfg/token",
    )
    assert kwargs["authority"] == "https://login.microsoftonline.us"


def test_build_default_chain_passes_client_and_tenant(recorded: list[Any]) -> None:
    build_credential(AzureEntraIdConfig(credential="default", tenant_id="t", client_id="c"))
    build_credential(AzureEntraIdConfig(credential="default"))
    assert recorded == [
        (
            "DefaultAzureCredential",
            (),
            {
                "authority": "https://login.microsoftonline.com",
                "managed_identity_client_id": "c",
                "workload_identity_client_id": "c",
                "workload_identity_tenant_id": "t",
            },
        ),
        ("DefaultAzureCredential", (), {"authority": "https://login.microsoftonline.com"}),
    ]


def test_workload_identity_without_tenant_client_or_file_is_rejected_at_load() -> None:
    with pytest.raises(ValueError, match=r"tenant_id \(or AZURE_TENANT_ID\), client_id"):
        AzureEntraIdConfig(credential="workload_identity")


def test_client_secret_set_to_empty_string_is_rejected_at_load() -> None:
    with pytest.raises(ValueError, match="needs client_secret"):
        AzureEntraIdConfig.model_validate({"tenant_id": "t", "client_id": "c", "client_secret": ""})


def test_resolve_identity_label_never_contains_the_secret() -> None:
    config = AzureEntraIdConfig.model_validate(
        {"tenant_id": "t", "client_id": "c", "client_secret": "s3cr3t"}
    )
    assert resolve_identity(config).label == "client_secret tenant=t client=c"
    managed = resolve_identity(AzureEntraIdConfig(credential="managed_identity"))
    assert managed.label == "managed_identity tenant=- client=system-assigned"


def test_resolve_authority_env_var_applies_when_config_does_not_set_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "login.microsoftonline.us")
    config = AzureEntraIdConfig(credential="default")
    assert resolve_identity(config).authority == "https://login.microsoftonline.us"


async def test_build_real_credentials_for_every_kind_without_network(
    cert_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("federated")
    base = {"tenant_id": "t", "client_id": "c", "authority_host": "https://127.0.0.1:1"}
    configs = {
        aio.ClientSecretCredential: {**base, "client_secret": "s"},
        aio.CertificateCredential: {
            **base,
            "credential": "certificate",
            "certificate_path": str(cert_file),
        },
        aio.ManagedIdentityCredential: {"credential": "managed_identity", "client_id": "c"},
        aio.WorkloadIdentityCredential: {
            **base,
            "credential": "workload_identity",
            "federated_token_file": str(token_file),
        },
        aio.DefaultAzureCredential: {"credential": "default", "ca_bundle": str(cert_file)},
    }
    for expected, raw in configs.items():
        built = build_credential(AzureEntraIdConfig.model_validate(raw))
        assert isinstance(built, expected)
        await built.close()
    chained = build_credential(
        AzureEntraIdConfig.model_validate(
            {**configs[aio.CertificateCredential], "send_certificate_chain": True}
        )
    )
    assert isinstance(chained, ThreadedCredential)
    assert isinstance(chained.credential, SyncCertificateCredential)
    await chained.close()


async def test_build_managed_identity_uses_app_service_endpoint_from_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", "https://127.0.0.1:1/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "header")
    built = build_credential(AzureEntraIdConfig(credential="managed_identity"))
    assert isinstance(built, aio.ManagedIdentityCredential)
    assert type(built._credential).__name__ == "AppServiceCredential"
    await built.close()


def test_build_certificate_with_wrong_file_raises_value_or_os_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    config = AzureEntraIdConfig.model_validate(
        {
            "credential": "certificate",
            "tenant_id": "t",
            "client_id": "c",
            "certificate_path": str(bad),
        }
    )
    with pytest.raises((ValueError, OSError)):
        build_credential(config)
