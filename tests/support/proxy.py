"""The sidecar proxy under real uvicorn in front of the emulator: the ``proxy`` fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from llama_entra.config import LlamaEntraConfig
from llama_entra.proxy import create_proxy_app
from support.emulator import EmulatorHandle
from support.servers import run_uvicorn
from support.service import entra_section

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
