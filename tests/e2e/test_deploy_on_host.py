"""End-to-end: what the image and the Kubernetes manifests run, run here on the host.

No container engine on these machines, so the image's install script runs into a temporary
environment, and each role's container command and environment are taken from the manifests
kustomize renders, with only the host's stand-ins swapped in: loopback ports for Kubernetes
Services, temporary directories for volumes, the emulator for Entra ID and Azure OpenAI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llama_entra.backends import active_backend
from support.deploy import DEPLOY, config_maps, container, container_env, render
from support.emulator import EmulatorHandle
from support.service import ROOT, ServiceHandle, free_port, running_server

pytestmark = pytest.mark.slow

_KEY = "deploy-test-caller-key"


def test_image_install_steps_give_a_working_environment_without_dev_tools(
    tmp_path: Path,
) -> None:
    uv = shutil.which("uv")
    assert uv, "uv must be on PATH (make install puts it there)"
    env = {
        **os.environ,
        "UV_PYTHON": os.environ.get("UV_PYTHON") or sys.executable,
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"),
        "TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken"),
        "BACKEND": active_backend().name,  # the image's build argument: this run's backend
    }
    for step in ("deps", "project"):
        done = subprocess.run(
            ["scripts/container-install.sh", step],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    venv = tmp_path / "venv"
    assert not (venv / "bin" / "pytest").exists()  # --no-dev
    assert (tmp_path / "tiktoken" / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").is_file()
    script = (
        "import llama_entra; from llama_entra.backends import active_backend; "
        "print(llama_entra.__file__, active_backend().name)"
    )
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    )
    assert "site-packages" in probe.stdout  # installed, not a link back to src/
    assert probe.stdout.split()[-1] == active_backend().name
    usage = subprocess.run(
        [str(venv / "bin" / "llama-entra"), "--help"], capture_output=True, text=True, check=True
    )
    for command in ("serve", "enrich", "proxy", "emulator"):
        assert command in usage.stdout


class Pod:
    """One container of a rendered manifest, run on the host as the kubelet would start it."""

    def __init__(self, docs: list[dict[str, Any]], name: str, volumes: Path) -> None:
        self.docs = docs
        self.item = container(docs, name)
        self.volumes = volumes
        for config_map, data in config_maps(docs).items():
            if config_map.startswith("llama-entra-config"):
                for file_name, text in data.items():
                    (volumes / file_name).write_text(text)

    def command(self) -> list[str]:
        """The container command, the config map mount swapped for a directory here."""
        return [
            word.replace("/etc/llama-entra", str(self.volumes)) for word in self.item["command"]
        ]

    def environment(
        self, secrets: Mapping[str, Mapping[str, str]], host: Mapping[str, str]
    ) -> dict[str, str]:
        """What the container sees: the manifest's env, then the host's stand-ins."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
        image = {  # the Containerfile's ENV, with directories of this test
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "TIKTOKEN_CACHE_DIR": str(self.volumes / "tiktoken"),
            "LLAMA_ENTRA_STATE_DIR": str(self.volumes / "data"),
            "LLAMA_ENTRA_LOG_FORMAT": "json",
        }
        return base | image | container_env(self.docs, self.item, secrets) | dict(host)


def _azure(emulator: EmulatorHandle) -> dict[str, str]:
    """What a user edits in the kustomization's llama-entra-azure literals, and the CA."""
    return {
        "AZURE_API_BASE": emulator.azure_base_url,
        "AZURE_MODEL": emulator.model,
        "AZURE_AUTHORITY_HOST": emulator.url,
        "AZURE_CA_BUNDLE": str(emulator.ca_path),
    }


def _entra_secret(emulator: EmulatorHandle) -> dict[str, dict[str, str]]:
    return {
        "llama-entra-entra": {
            "AZURE_TENANT_ID": emulator.tenant_id,
            "AZURE_CLIENT_ID": emulator.client_id,
            "AZURE_CLIENT_SECRET": emulator.client_secret,
        }
    }


@pytest.fixture
def volumes(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "data").mkdir()
    (tmp_path / "callers").write_text(f"deploy-test:{_KEY}\n")
    yield tmp_path


def _serve(pod: Pod, env: dict[str, str], port: int, stack: ExitStack) -> ServiceHandle:
    base = f"http://127.0.0.1:{port}"
    log = pod.volumes / f"{pod.item['name']}-{port}.log"
    probe = "/v1/health" if pod.item["name"] == "llama-stack" else "/liveness"
    return stack.enter_context(running_server(pod.command(), env, log, base + probe, base))


def _ask(service: ServiceHandle) -> httpx.Response:
    return httpx.post(
        f"{service.url}/v1/query",
        json={"query": "from the manifests"},
        headers={"Authorization": f"Bearer {_KEY}"},
        timeout=60,
    )


def test_service_mode_manifests_run_llama_stack_without_credential_and_llama_entra_with_it(
    fresh_emulator: EmulatorHandle, volumes: Path
) -> None:
    docs = render(DEPLOY / "service-mode")
    stack_port, service_port = free_port(), free_port()
    server = Pod(docs, "llama-stack", volumes)
    server_env = server.environment(
        secrets={},
        host=_azure(fresh_emulator)
        | {"LLAMA_STACK_HOST": "127.0.0.1", "LLAMA_STACK_PORT": str(stack_port)},
    )
    assert not [name for name in server_env if name.startswith(("AZURE_CLIENT", "AZURE_TENANT"))]
    api = Pod(docs, "llama-entra", volumes)
    api_env = api.environment(
        secrets=_entra_secret(fresh_emulator),
        host=_azure(fresh_emulator)
        | {
            "LLAMA_ENTRA_HOST": "127.0.0.1",
            "LLAMA_ENTRA_PORT": str(service_port),
            "LLAMA_STACK_URL": f"http://127.0.0.1:{stack_port}",  # the llama-stack Service
            "LLAMA_ENTRA_KEYS_FILE": str(volumes / "callers"),
        },
    )
    with ExitStack() as stack:
        _serve(server, server_env, stack_port, stack)
        assert fresh_emulator.counters()["token_requests"] == 0  # the server needed no token
        service = _serve(api, api_env, service_port, stack)
        assert httpx.post(f"{service.url}/v1/query", json={"query": "x"}).status_code == 401
        answer = _ask(service)
        assert answer.status_code == 200, answer.text
        assert answer.json()["response"] == "You said: from the manifests"
        assert fresh_emulator.counters()["token_requests"] == 1


def test_library_mode_manifest_serves_queries(
    fresh_emulator: EmulatorHandle, volumes: Path
) -> None:
    docs = render(DEPLOY / "library-mode")
    port = free_port()
    api = Pod(docs, "llama-entra", volumes)
    env = api.environment(
        secrets=_entra_secret(fresh_emulator),
        host=_azure(fresh_emulator)
        | {
            "LLAMA_ENTRA_HOST": "127.0.0.1",
            "LLAMA_ENTRA_PORT": str(port),
            "LLAMA_ENTRA_KEYS_FILE": str(volumes / "callers"),
        },
    )
    with ExitStack() as stack:
        service = _serve(api, env, port, stack)
        answer = _ask(service)
        assert answer.status_code == 200, answer.text
        assert answer.json()["response"] == "You said: from the manifests"


def test_sidecar_manifest_gives_the_app_entra_auth(
    fresh_emulator: EmulatorHandle, volumes: Path
) -> None:
    docs = render(DEPLOY / "sidecar")
    port = free_port()
    proxy = Pod(docs, "llama-entra", volumes)
    env = proxy.environment(
        secrets=_entra_secret(fresh_emulator),
        host=_azure(fresh_emulator) | {"LLAMA_ENTRA_PROXY_PORT": str(port)},
    )
    app_env = container_env(docs, container(docs, "app"), {})
    base_url = app_env["OPENAI_BASE_URL"].replace(":8081", f":{port}")
    log = volumes / "proxy.log"
    with running_server(proxy.command(), env, log, f"{base_url}/healthz", base_url):
        client = openai.OpenAI(base_url=base_url, api_key=app_env["OPENAI_API_KEY"], max_retries=0)
        reply = client.chat.completions.create(
            model=fresh_emulator.model, messages=[{"role": "user", "content": "via the sidecar"}]
        )
        client.close()
    assert reply.choices[0].message.content == "You said: via the sidecar"
    assert fresh_emulator.counters()["token_requests"] == 1
