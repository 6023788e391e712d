"""Pytest helpers: the llama-entra service (and a Llama Stack server) as real subprocesses.

``service_config(...)`` writes a service config wired to the emulator; ``start_service(path)``
runs ``llama-entra serve`` on a free port until the block exits and waits on ``/liveness``
with a deadline; ``start_llama_stack(...)`` runs the container entrypoint script (enrich, then
the installed backend's server) for service mode. Logs go to files the tests can read. As a
pytest plugin it gives ``service``: a library-mode service for the emulator's demo identity,
one per test process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from support.emulator import EmulatorHandle

__all__ = [
    "ROOT",
    "ServiceHandle",
    "entra_identity_environment",
    "free_port",
    "running_server",
    "service_config",
    "stack_environment",
    "start_llama_stack",
    "start_replicas",
    "start_service",
    "wait_until_up",
]

ROOT = Path(__file__).resolve().parents[2]
_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def entra_section(emulator: EmulatorHandle) -> dict[str, Any]:
    """An ``azure_entra_id`` section for the emulator's demo client (client secret)."""
    return {
        "tenant_id": emulator.tenant_id,
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
        "authority_host": emulator.url,
        "ca_bundle": str(emulator.ca_path),
        "timeout_seconds": 5,
    }


def entra_identity_environment(emulator: EmulatorHandle) -> dict[str, str]:
    """The azure-identity variables for the emulator's demo client (remote::azure-entra)."""
    return {
        "AZURE_TENANT_ID": emulator.tenant_id,
        "AZURE_CLIENT_ID": emulator.client_id,
        "AZURE_CLIENT_SECRET": emulator.client_secret,
        "AZURE_AUTHORITY_HOST": emulator.url,
        "AZURE_EMBEDDING_MODEL": emulator.embedding_model,
        "AZURE_EMBEDDING_DIMENSION": str(emulator.embedding_dimension),
    }


def stack_environment(emulator: EmulatorHandle, state_dir: Path) -> dict[str, str]:
    """Environment for a run config pointed at the emulator (no Azure credential in it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env |= {
        "AZURE_API_BASE": emulator.azure_base_url,
        "AZURE_CA_BUNDLE": str(emulator.ca_path),
        "AZURE_MODEL": emulator.model,
        "LLAMA_ENTRA_STATE_DIR": str(state_dir),
        "SQLITE_STORE_DIR": str(state_dir),
        "TIKTOKEN_CACHE_DIR": str(state_dir / "tiktoken"),
    }
    return env


def service_config(
    directory: Path,
    emulator: EmulatorHandle,
    *,
    mode: str = "library",
    llama_stack_url: str | None = None,
    entra: Mapping[str, Any] | None = None,
    with_entra: bool = True,
    extra: Mapping[str, Any] | None = None,
    run_config: Path | str = "azure.yaml",
) -> Path:
    """Write ``llama-entra.yaml`` for the emulator's demo client; returns its path.

    ``run_config`` is the library-mode run config: a name in ``run-configs/`` or a path.
    """
    llama_stack: dict[str, Any] = {"mode": mode}
    if mode == "library":
        llama_stack["config"] = str(ROOT / "run-configs" / run_config)
    else:
        llama_stack["url"] = llama_stack_url
    document: dict[str, Any] = {
        "service": {"state_dir": str(directory / "state"), "log_level": "debug"},
        "llama_stack": llama_stack,
    }
    if with_entra:
        document["azure_entra_id"] = entra_section(emulator) | (entra or {})
    document |= dict(extra or {})
    path = directory / "llama-entra.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


class ServiceHandle:
    """A running server: its base URL, process and log file."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.url = url
        self.process = process
        self.log_path = log_path

    def logs(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")


def wait_until_up(
    url: str, process: subprocess.Popen[bytes], log_path: Path, deadline_seconds: float
) -> None:
    """Poll ``url`` until it answers 200; fail fast if the process dies."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not up within {deadline_seconds} s")
        time.sleep(0.1)


def _spawn(command: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=dict(env), cwd=ROOT
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_server(
    command: list[str],
    env: Mapping[str, str],
    log_path: Path,
    probe: str,
    base: str,
    *,
    deadline_seconds: float = 90,
) -> Iterator[ServiceHandle]:
    """Run ``command`` in the repository root until the block exits; up once ``probe`` is 200."""
    process = _spawn(command, env, log_path)
    try:
        wait_until_up(probe, process, log_path, deadline_seconds)
        yield ServiceHandle(base, process, log_path)
    finally:
        _stop(process)


@contextlib.contextmanager
def start_service(
    config_path: Path, env: Mapping[str, str], *, port: int | None = None
) -> Iterator[ServiceHandle]:
    """Run ``llama-entra serve -c config_path`` until the block exits."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(_BIN / "llama-entra"), "serve", "-c", str(config_path), "--port", str(port)]
    log_path = config_path.with_name(f"service-{port}.log")
    with running_server(command, env, log_path, f"{base}/liveness", base) as handle:
        yield handle


@contextlib.contextmanager
def start_replicas(
    replicas: list[tuple[Path, Mapping[str, str]]],
    *,
    deadline_seconds: float = 120,
    wait: bool = True,
) -> Iterator[list[ServiceHandle]]:
    """Start ``llama-entra serve`` for each ``(config_path, env)`` at the same moment.

    All processes are spawned before any is waited on, so their start-ups overlap; with
    ``wait=False`` the block starts at once and the caller waits (``wait_until_up``).
    """
    handles: list[ServiceHandle] = []
    try:
        for config_path, env in replicas:
            port = free_port()
            command = [str(_BIN / "llama-entra"), "serve", "-c", str(config_path)]
            log_path = config_path.with_name(f"service-{port}.log")
            process = _spawn([*command, "--port", str(port)], env, log_path)
            handles.append(ServiceHandle(f"http://127.0.0.1:{port}", process, log_path))
        for handle in handles if wait else []:
            probe = f"{handle.url}/liveness"
            wait_until_up(probe, handle.process, handle.log_path, deadline_seconds)
        yield handles
    finally:
        for handle in handles:
            _stop(handle.process)


@contextlib.contextmanager
def start_llama_stack(
    service_config_path: Path | None,
    env: Mapping[str, str],
    *,
    port: int | None = None,
    run_config: Path = ROOT / "run-configs" / "azure.yaml",
    log_dir: Path | None = None,
    deadline_seconds: float = 90,
) -> Iterator[ServiceHandle]:
    """Run the container entrypoint (enrich, then the backend's server) until the block exits.

    ``service_config_path`` None runs ``--entra`` (no service config: the identity, if any, comes
    from the environment); the log then goes to ``log_dir``.
    """
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    script = ROOT / "scripts" / "llama-stack-entrypoint.sh"
    source = "--entra" if service_config_path is None else str(service_config_path)
    command = [str(script), source, str(run_config), "--port", str(port)]
    environment = {
        **env,
        "PATH": f"{_BIN}{os.pathsep}{env.get('PATH', '')}",
        "LLAMA_STACK_HOST": "127.0.0.1",
    }
    directory = log_dir or (service_config_path.parent if service_config_path else None)
    if directory is None:
        raise ValueError("log_dir is required with --entra")
    log_path = directory / f"llama-stack-{port}.log"
    probe = f"{base}/v1/health"
    with running_server(
        command, environment, log_path, probe, base, deadline_seconds=deadline_seconds
    ) as handle:
        yield handle


@contextlib.contextmanager
def start_service_mode(
    emulator: EmulatorHandle,
    directory: Path,
    *,
    entra: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Iterator[ServiceHandle]:
    """llama-entra in service mode in front of the container entrypoint's Llama Stack server,
    both configured from the same ``azure_entra_id`` (plus ``entra``) and ``extra`` sections."""
    env = stack_environment(emulator, directory / "stack-state")
    (directory / "stack").mkdir()
    stack_config = service_config(directory / "stack", emulator, entra=entra, extra=extra)
    with start_llama_stack(stack_config, env) as stack:
        (directory / "service").mkdir()
        path = service_config(
            directory / "service",
            emulator,
            mode="service",
            llama_stack_url=stack.url,
            entra=entra,
            extra=extra,
        )
        with start_service(path, env) as handle:
            yield handle


@pytest.fixture(scope="session")
def service(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """A library-mode service wired to the emulator, shared by every test that needs no other.

    Started once per test process (a library-mode start is 5-10 s of CPU): tests that need a
    cold token cache, other settings or a restart start their own with ``start_service``.
    """
    directory = tmp_path_factory.mktemp("library-service")
    path = service_config(directory, emulator)
    with start_service(path, stack_environment(emulator, directory / "state")) as handle:
        yield handle
