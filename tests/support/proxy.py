"""The sidecar proxy in front of the emulator: the ``proxy`` fixture (real uvicorn in a thread)
and ``proxy_process`` (``llama-entra proxy`` as a process of its own, for benchmarks)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from llama_entra.config import LlamaEntraConfig
from llama_entra.proxy import create_proxy_app
from support.emulator import EmulatorHandle
from support.servers import run_uvicorn
from support.service import ServiceHandle, entra_section, free_port, running_server

ProxyFactory = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def proxy(fresh_emulator: EmulatorHandle) -> ProxyFactory:
    """Start a proxy for the emulator's demo identity (``**changes`` go to ``proxy:``,
    ``entra`` to ``azure_entra_id:``, ``extra`` to the top level)."""

    @contextmanager
    def start(
        *,
        entra: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> Iterator[str]:
        config = LlamaEntraConfig.model_validate(
            {
                "azure_entra_id": entra_section(fresh_emulator) | dict(entra or {}),
                "proxy": {
                    "upstream": fresh_emulator.azure_base_url,
                    "ca_bundle": str(fresh_emulator.ca_path),
                    **changes,
                },
                **(extra or {}),
            }
        )
        with run_uvicorn(create_proxy_app(config)) as url:
            yield url

    return start


@contextmanager
def proxy_process(emulator: EmulatorHandle, directory: Path) -> Iterator[ServiceHandle]:
    """``llama-entra proxy`` for the emulator's demo identity, quiet, until the block exits."""
    config = {
        "service": {"log_level": "warning"},
        "azure_entra_id": entra_section(emulator),
        "proxy": {"upstream": emulator.azure_base_url, "ca_bundle": str(emulator.ca_path)},
    }
    path = directory / "proxy.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "llama-entra"), "proxy", "-c", str(path)]
    command += ["--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    with running_server(command, env, directory / "proxy.log", f"{base}/readyz", base) as handle:
        yield handle
