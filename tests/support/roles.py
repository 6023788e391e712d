"""The image's roles as the image tests start them: a container of a rendered manifest.

``stage_role`` takes a container's command, environment and volumes from the manifests
kustomize renders from ``deploy/``, with the emulator's values and host directories swapped in;
``running_role`` runs it in a fresh buildah container until the block exits. Plus the checks
every role shares: the image's HEALTHCHECK, a SIGTERM stop, the read-only root.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.container import Buildah, Container, ContainerProcess
from support.deploy import DEPLOY, config_maps, container_env, containers, render
from support.emulator import EmulatorHandle
from support.image import BuiltImage, record

__all__ = [
    "CA_DIR",
    "KEY",
    "Role",
    "StreamReader",
    "assert_read_only_except_volumes",
    "assert_stops",
    "run_healthcheck",
    "running_role",
    "stage_role",
]

KEY = "image-test-caller-key"  # the callers Secret's API key
CA_DIR = "/etc/emulator-ca"  # where the emulator's CA is mounted
START_DEADLINE = 180.0


@dataclass
class Role:
    """One container of a rendered manifest, staged for buildah: command, env and volumes."""

    command: list[str]
    env: dict[str, str]
    volumes: dict[str, str]


def stage_role(
    kustomization: str,
    name: str,
    stage: Path,
    emulator: EmulatorHandle,
    overrides: Mapping[str, str],
) -> Role:
    """Command, env and volumes of container ``name``, with the emulator's values swapped in.

    ConfigMaps and Secrets become read-only host directories (Secret files with the manifest's
    ``defaultMode``, owned by root: readable only through group 0); emptyDirs become empty
    directories with mode 0777, as the kubelet makes them.
    """
    docs = render(DEPLOY / kustomization)
    pod, item = next((p, i) for p, i in containers(docs) if i["name"] == name)
    secrets = {
        "llama-entra-entra": {
            "AZURE_TENANT_ID": emulator.tenant_id,
            "AZURE_CLIENT_ID": emulator.client_id,
            "AZURE_CLIENT_SECRET": emulator.client_secret,
        }
    }
    secret_files = {"llama-entra-callers": {"keys": f"image-test:{KEY}\n"}}
    volumes_by_name = {volume["name"]: volume for volume in pod["volumes"]}
    maps = config_maps(docs)
    stage.mkdir()
    mounts: dict[str, str] = {}
    for mount in item.get("volumeMounts", []):
        volume = volumes_by_name[mount["name"]]
        host = stage / mount["name"]
        if "configMap" in volume:
            _write_files(host, maps[volume["configMap"]["name"]], 0o644)
        elif "secret" in volume:
            files = secret_files.get(volume["secret"]["secretName"])
            if files is None:
                assert volume["secret"].get("optional"), f"no test data for {volume}"
                continue
            _write_files(host, files, volume["secret"].get("defaultMode", 0o644))
        elif "emptyDir" in volume:
            host.mkdir()
            host.chmod(0o777)
        else:
            raise AssertionError(f"volume kind not staged here: {volume}")
        mounts[str(host)] = mount["mountPath"] + (":ro" if mount.get("readOnly") else "")
    _write_files(stage / "emulator-ca", {"ca.pem": emulator.ca_path.read_text()}, 0o644)
    mounts[str(stage / "emulator-ca")] = f"{CA_DIR}:ro"
    azure = {
        "AZURE_API_BASE": emulator.azure_base_url,
        "AZURE_MODEL": emulator.model,
        "AZURE_AUTHORITY_HOST": emulator.url,
        "AZURE_CA_BUNDLE": f"{CA_DIR}/ca.pem",
    }
    env = container_env(docs, item, secrets) | azure | dict(overrides)
    return Role(list(item["command"]), env, mounts)


def _write_files(directory: Path, files: Mapping[str, str], mode: int) -> None:
    directory.mkdir()
    directory.chmod(0o755)
    for name, text in files.items():
        (directory / name).write_text(text)
        (directory / name).chmod(mode)


def wait_until_up(url: str, process: ContainerProcess) -> float:
    """Seconds until ``url`` answers 200; fails with the container's log if it never does."""
    started = time.monotonic()
    while time.monotonic() - started < START_DEADLINE:
        if process.process.poll() is not None:
            pytest.fail(
                f"the container exited with {process.process.returncode}:\n{process.logs()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"{url} not up within {START_DEADLINE} s:\n{process.logs()[-4000:]}")


@contextlib.contextmanager
def running_role(
    buildah: Buildah,
    image: BuiltImage,
    role: Role,
    workdir: Path,
    probe: str,
    *,
    label: str,
    user: str | None = None,
    read_only: bool = True,
) -> Iterator[tuple[Container, ContainerProcess]]:
    """The role running in a fresh container until the block exits, then removed."""
    name = f"llama-entra-test-{label}-{uuid.uuid4().hex[:8]}"
    container = Container(buildah, image.name, name, workdir)
    try:
        container.set_env(role.env)
        if read_only:
            container.make_root_read_only(role.volumes)
        process = container.start(role.command, log_name=name, user=user, volumes=role.volumes)
        seconds = wait_until_up(probe, process)
        record(f"{image.backend}: {label} up in", f"{seconds:.1f} s")
        yield container, process
    finally:
        container.close()


def run_healthcheck(
    container: Container, image: BuiltImage, url: str, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The image's own HEALTHCHECK command, run in the container with HEALTHCHECK_URL=url."""
    test: list[str] = image.config["Healthcheck"]["Test"]
    assert test[0] == "CMD", test  # exec form: runs without a shell
    return container.run(test[1:], user=user, env={"HEALTHCHECK_URL": url}, timeout=30)


def assert_stops(process: ContainerProcess, limit: float, label: str, backend: str) -> None:
    code, seconds = process.terminate(timeout=limit + 20)
    record(f"{backend}: {label} stopped on SIGTERM in", f"{seconds:.1f} s (exit {code})")
    assert code == 0, f"{label} exited with {code} on SIGTERM:\n{process.logs()[-3000:]}"
    assert seconds <= limit, f"{label} took {seconds:.1f} s to stop (limit {limit} s)"


def assert_read_only_except_volumes(container: Container, role: Role, user: str) -> None:
    """As root, every image path refuses writes; as the role's user, writable volumes take them."""
    for path in ("/probe", "/app/probe", "/app/.venv/probe", "/etc/probe", "/usr/bin/probe"):
        done = container.run(["touch", path], user="0:0", volumes=role.volumes)
        assert done.returncode != 0, f"root could write {path}"
        assert "Read-only file system" in done.stderr + done.stdout, done.stderr
    for target in role.volumes.values():
        if not target.endswith(":ro"):
            done = container.run(["touch", f"{target}/probe"], user=user, volumes=role.volumes)
            assert done.returncode == 0, f"{target} not writable: {done.stderr}"


class StreamReader(threading.Thread):
    """A streaming POST read in the background, line by line; an error ends the lines."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        super().__init__()
        self.url = url
        self.body = body
        self.lines: list[str] = []
        self.first = threading.Event()
        self.start()

    def run(self) -> None:
        """Read until the stream ends or breaks."""
        try:
            with httpx.stream("POST", self.url, json=self.body, timeout=60) as response:
                for line in response.iter_lines():
                    if line:
                        self.lines.append(line)
                        self.first.set()
        except httpx.HTTPError as exc:
            self.lines.append(f"error: {exc!r}")
        finally:
            self.first.set()
