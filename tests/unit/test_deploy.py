"""The container image recipe and the Kubernetes manifests in deploy/, checked offline.

Every kustomization is built with the real kustomize and validated strictly against the
Kubernetes 1.37 schemas (kubernetes-validate); house rules (non-root, read-only root, probes,
no secret in a manifest) are asserted on what kustomize produced, not on the source files.
"""

from __future__ import annotations

import copy
import importlib
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from llama_entra.config import expand_env, parse_config
from llama_entra.provider import get_provider_spec
from support.deploy import DEPLOY, config_maps, container, containers, kustomizations, render
from support.service import ROOT

K8S_VERSION = "1.37"
CONTAINERFILE = (ROOT / "Containerfile").read_text()
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|API_KEY|(^|_)TOKEN($|_(?!FILE))", re.IGNORECASE)


@pytest.fixture(scope="module", params=kustomizations(), ids=lambda p: str(p.relative_to(DEPLOY)))
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = render(request.param)
    return docs


def test_every_role_and_credential_has_a_kustomization() -> None:
    names = {str(path.relative_to(DEPLOY)) for path in kustomizations()}
    assert {"library-mode", "service-mode", "sidecar", "postgres-in-cluster"} <= names
    assert {"examples/library-mode-postgres", "examples/service-mode-postgres"} <= names
    examples = " ".join(names)
    assert "certificate" in examples and "workload-identity" in examples


def test_manifests_are_valid_kubernetes_objects(rendered: list[dict[str, Any]]) -> None:
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_schema_validation_would_catch_a_misspelled_field(rendered: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(next(d for d in rendered if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_pods_run_non_root_read_only_without_privileges(rendered: list[dict[str, Any]]) -> None:
    for pod, item in containers(rendered):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        context = item["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, item["name"]
        assert context["allowPrivilegeEscalation"] is False, item["name"]
        assert context["capabilities"]["drop"] == ["ALL"], item["name"]
        assert "memory" in item["resources"]["limits"], item["name"]


def test_llama_entra_containers_use_the_image_and_have_probes(
    rendered: list[dict[str, Any]],
) -> None:
    ours = [item for _, item in containers(rendered) if "llama-entra" in item["image"]]
    names = {d["metadata"]["name"] for d in rendered if d["kind"] == "Deployment"}
    assert ours or names == {"postgres"}  # only deploy/postgres-in-cluster runs none of ours
    for item in ours:
        assert item["image"] == "localhost/llama-entra:0.1.0"
        assert "startupProbe" in item and "livenessProbe" in item, item["name"]
        probes = str([item.get(k) for k in ("livenessProbe", "readinessProbe")])
        assert any(path in probes for path in ("/liveness", "/v1/health", "/healthz")), probes


def test_serve_containers_take_their_workers_from_the_cpu_limit(
    rendered: list[dict[str, Any]],
) -> None:
    serving = [item for _, item in containers(rendered) if "serve" in item.get("command", [])]
    for item in serving:
        workers = [e for e in item.get("env", []) if e["name"] == "LLAMA_ENTRA_WORKERS"]
        assert workers, item["name"]
        field = workers[0]["valueFrom"]["resourceFieldRef"]
        assert (field["resource"], str(field["divisor"])) == ("limits.cpu", "1")
        assert "cpu" in item["resources"]["limits"], item["name"]  # else: the node's CPU count


def test_no_secret_value_is_in_a_manifest(rendered: list[dict[str, Any]]) -> None:
    assert not [d for d in rendered if d["kind"] == "Secret"]  # Secrets are created by users
    for _, item in containers(rendered):
        for entry in item.get("env", []):
            if SECRET_NAMES.search(entry["name"]):
                assert entry.get("value") in (None, "unused"), entry["name"]
    for data in config_maps(rendered).values():
        for key in data:
            assert not SECRET_NAMES.search(key), key


def test_llama_stack_server_gets_no_credential() -> None:
    docs = render(DEPLOY / "service-mode")
    server = container(docs, "llama-stack")
    assert server["command"][:2] == ["scripts/llama-stack-entrypoint.sh", "--entra"]
    assert not [s for s in server.get("envFrom", []) if "secretRef" in s]
    llama_stack = next(d for d in docs if d["kind"] == "NetworkPolicy")
    allowed = llama_stack["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert allowed["app.kubernetes.io/component"] == "api"


def test_workload_identity_uses_the_service_account_and_pod_label() -> None:
    docs = render(DEPLOY / "examples" / "service-mode-workload-identity")
    account = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert "azure.workload.identity/client-id" in account["metadata"]["annotations"]
    api = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "llama-entra"
    )
    pod = api["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
    server = next(
        d for d in docs if d["metadata"]["name"] == "llama-stack" and d["kind"] == "Deployment"
    )
    assert "serviceAccountName" not in server["spec"]["template"]["spec"]
    azure = next(v for k, v in config_maps(docs).items() if k.startswith("llama-entra-azure"))
    assert azure["AZURE_CREDENTIAL"] == "workload_identity"


CREDENTIAL_ENV = {
    "client_secret": {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s"},
    "certificate": {
        "AZURE_TENANT_ID": "t",
        "AZURE_CLIENT_ID": "c",
        "AZURE_CLIENT_CERTIFICATE_PATH": "/var/run/secrets/llama-entra/entra-cert/client-cert.pem",
    },
    "workload_identity": {  # what the AKS webhook injects
        "AZURE_TENANT_ID": "t",
        "AZURE_CLIENT_ID": "c",
        "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
        "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/",
    },
}


@pytest.mark.parametrize("credential", sorted(CREDENTIAL_ENV))
@pytest.mark.parametrize("role", ["library-mode", "service-mode", "sidecar"])
def test_service_configs_in_config_maps_load_for_each_credential(
    role: str, credential: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("AZURE_")]:
        monkeypatch.delenv(name)
    for name, value in {**CREDENTIAL_ENV[credential], "AZURE_CREDENTIAL": credential}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_API_BASE", "https://r.openai.azure.com/openai/v1")
    text = (DEPLOY / role / "llama-entra.yaml").read_text()
    config = parse_config(yaml.safe_load(text), source=f"{role}/llama-entra.yaml")
    assert config.azure_entra_id is not None
    assert config.azure_entra_id.credential == credential
    assert config.azure_entra_id.ca_bundle is None
    if role == "sidecar":
        assert config.proxy.host == "127.0.0.1"
    else:
        assert config.service.host == "0.0.0.0"
        assert config.authentication.module == "api_key"


def test_containerfile_runs_as_non_root_with_healthcheck_and_default_serve() -> None:
    stages = CONTAINERFILE.split("\nFROM ")
    final = stages[-1]
    assert len(stages) >= 2, "multi-stage"
    assert "\nUSER 10001\n" in final
    assert "\nHEALTHCHECK " in final
    assert 'CMD ["llama-entra", "serve", "-c", "run-configs/llama-entra-azure.yaml"]' in final
    assert "org.opencontainers.image.title" in final
    for name in re.findall(r"^\s+([A-Z_]+)=", final, re.MULTILINE):
        assert not SECRET_NAMES.search(name), name


def test_containerfile_copies_only_files_that_exist_and_are_not_ignored() -> None:
    ignored = (ROOT / ".containerignore").read_text()
    assert (ROOT / ".dockerignore").read_text() == ignored
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", CONTAINERFILE, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path
            assert f"!{path.split('/')[0]}" in ignored or f"!{path}" in ignored, path


def _commands() -> list[tuple[str, str]]:
    """(kustomization, command path) for every container command in every kustomization."""
    found: list[tuple[str, str]] = []
    for directory in kustomizations():
        for _, item in containers(render(directory)):
            for word in item.get("command", []):
                found.append((str(directory), word))
    return found


def test_commands_in_manifests_name_files_of_the_image() -> None:
    image_paths = ("scripts/", "run-configs/")
    words = [word for _, word in _commands() if word.startswith(image_paths)]
    assert "scripts/llama-stack-entrypoint.sh" in words
    for word in words:
        assert (ROOT / word).exists(), word
        copied = (
            f"COPY {word} " in CONTAINERFILE or f"COPY {Path(word).parts[0]}/ " in CONTAINERFILE
        )
        assert copied, f"{word} is not in the image"


def test_llama_stack_entra_example_holds_the_identity_with_workload_identity_and_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = render(DEPLOY / "examples" / "llama-stack-entra-workload-identity")
    server = container(docs, "llama-stack")
    assert server["command"] == [
        "scripts/llama-stack-entrypoint.sh",
        "--entra",
        "run-configs/azure-entra.yaml",
    ]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == "llama-entra"
    azure = next(v for k, v in config_maps(docs).items() if k.startswith("llama-entra-azure"))
    assert azure["AZURE_CREDENTIAL"] == "workload_identity"
    # The provider config of the run config, with the pod's environment, names that identity.
    for name in [n for n in os.environ if n.startswith("AZURE_")]:
        monkeypatch.delenv(name)
    for name, value in {**azure, **CREDENTIAL_ENV["workload_identity"]}.items():
        monkeypatch.setenv(name, value)
    run = yaml.safe_load((ROOT / "run-configs" / "azure-entra.yaml").read_text())
    raw = expand_env(run["providers"]["inference"][0]["config"])
    raw["network"] = None  # Llama Stack turns the "true" default into a boolean itself
    module, _, name = get_provider_spec().config_class.rpartition(".")
    config = getattr(importlib.import_module(module), name)(**raw)
    identity = config.azure_entra_id
    assert identity.credential == "workload_identity"
    assert identity.client_secret is None
    assert str(identity.federated_token_file).endswith("azure-identity-token")


def _runs_llama_stack(docs: list[dict[str, Any]], deployment: dict[str, Any]) -> bool:
    """Whether it holds Llama Stack's stores: a server, or llama-entra in library mode."""
    item = deployment["spec"]["template"]["spec"]["containers"][0]
    if "scripts/llama-stack-entrypoint.sh" in item.get("command", []):
        return True
    if item.get("command", [])[:2] != ["llama-entra", "serve"]:
        return False
    service_config = next(
        yaml.safe_load(data["llama-entra.yaml"])
        for name, data in config_maps(docs).items()
        if name.startswith("llama-entra-config")
    )
    return bool(service_config["llama_stack"]["mode"] == "library")


def _stores_on_postgres(docs: list[dict[str, Any]], item: dict[str, Any]) -> bool:
    env = {entry["name"]: entry for entry in item.get("env", [])}
    maps = config_maps(docs)
    from_maps: dict[str, str] = {}
    for source in item.get("envFrom", []):
        if "configMapRef" in source:
            from_maps |= maps[source["configMapRef"]["name"]]
    run_config = from_maps.get("LLAMA_STACK_RUN_CONFIG", "")
    postgres_run = "run-configs/azure-postgres.yaml"
    uses_it = run_config == postgres_run or postgres_run in item.get("command", [])
    password = env.get("POSTGRES_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
    return (
        uses_it
        and password.get("name") == "llama-entra-postgres"
        and "value" not in (env.get("POSTGRES_PASSWORD") or {"value": None})
    )


def test_no_role_runs_more_than_one_replica_on_per_pod_sqlite(
    rendered: list[dict[str, Any]],
) -> None:
    for deployment in [d for d in rendered if d["kind"] == "Deployment"]:
        if not _runs_llama_stack(rendered, deployment):
            continue
        labels = deployment["metadata"]["labels"]
        assert labels.get("llama-entra/stores") == "true", deployment["metadata"]["name"]
        item = deployment["spec"]["template"]["spec"]["containers"][0]
        if deployment["spec"].get("replicas", 1) > 1:
            assert _stores_on_postgres(rendered, item), deployment["metadata"]["name"]


def test_no_service_mode_replicas_list_conversations_from_per_pod_sqlite(
    rendered: list[dict[str, Any]],
) -> None:
    for deployment in [d for d in rendered if d["kind"] == "Deployment"]:
        item = deployment["spec"]["template"]["spec"]["containers"][0]
        if _runs_llama_stack(rendered, deployment) or item.get("command", [])[:2] != [
            "llama-entra",
            "serve",
        ]:
            continue
        labels = deployment["metadata"]["labels"]
        assert labels.get("llama-entra/conversation-index") == "true", labels
        if deployment["spec"].get("replicas", 1) > 1:
            env = {entry["name"]: entry for entry in item.get("env", [])}
            secret = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert secret["name"] == "llama-entra-postgres"
            maps = config_maps(rendered)
            sources = [s["configMapRef"]["name"] for s in item["envFrom"] if "configMapRef" in s]
            assert any(maps[name].get("POSTGRES_HOST") for name in sources)


@pytest.mark.parametrize("example", ["library-mode-postgres", "service-mode-postgres"])
def test_postgres_examples_run_replicas_on_the_database_with_the_password_from_a_secret(
    example: str,
) -> None:
    docs = render(DEPLOY / "examples" / example)
    holders = [d for d in docs if d["kind"] == "Deployment" and _runs_llama_stack(docs, d)]
    assert len(holders) == 1
    assert holders[0]["spec"]["replicas"] > 1
    item = holders[0]["spec"]["template"]["spec"]["containers"][0]
    assert _stores_on_postgres(docs, item)
    env = {entry["name"]: entry for entry in item["env"]}
    assert env["PGSSLMODE"]["value"] == "$(POSTGRES_SSL_MODE)"  # for 0.7.3's SQL stores
    others = [d for d in docs if d["kind"] == "Deployment" and d not in holders]
    for other in others:  # llama-entra in service mode: its conversation index, never a literal
        for entry in other["spec"]["template"]["spec"]["containers"][0].get("env", []):
            assert "value" not in entry or "POSTGRES_PASSWORD" not in entry["name"]


def test_postgres_run_config_and_library_config_agree_on_the_variable() -> None:
    text = (DEPLOY / "library-mode" / "llama-entra.yaml").read_text()
    assert "${env.LLAMA_STACK_RUN_CONFIG:=run-configs/azure.yaml}" in text
    run_config = yaml.safe_load((ROOT / "run-configs" / "azure-postgres.yaml").read_text())
    backends = run_config["storage"]["backends"].values()
    assert {b["type"] for b in backends} == {"kv_postgres", "sql_postgres"}
    for backend in backends:
        assert backend["password"] == "${env.POSTGRES_PASSWORD}"
        assert backend["host"] == "${env.POSTGRES_HOST:=localhost}"
