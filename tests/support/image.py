"""The image under test as the image tests see it, and the measurements they report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MEASURED", "BuiltImage", "record"]

# What a run measured (build and start times, sizes), printed at its end by tests/image.
MEASURED: dict[str, str] = {}


@dataclass(frozen=True)
class BuiltImage:
    """The image under test: its name, backend, config and the build secret it was given."""

    name: str
    backend: str
    inspect: dict[str, Any]
    secret_bundle: Path
    canary_pem: bytes

    @property
    def config(self) -> dict[str, Any]:
        """The Docker-format image config (User, Env, Cmd, Healthcheck, Labels)."""
        config: dict[str, Any] = self.inspect["Docker"]["config"]
        return config


def record(name: str, value: str) -> None:
    """Keep a measurement for the end-of-run summary."""
    MEASURED[name] = value
