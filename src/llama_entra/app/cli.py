"""``llama-entra serve``: run the REST service under uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

from llama_entra.app.arenas import limit_malloc_arenas

if TYPE_CHECKING:
    from llama_entra.config import LlamaEntraConfig, ServiceConfig
    from llama_entra.telemetry.setup import Tracing

__all__ = ["add_arguments", "app_from_environment", "run"]

CONFIG_ENV = "LLAMA_ENTRA_CONFIG"
WORKERS_ENV = "LLAMA_ENTRA_WORKERS"
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``llama-entra serve``."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path(os.environ.get(CONFIG_ENV, "llama-entra.yaml")),
        help=f"service config (default: ${CONFIG_ENV} or llama-entra.yaml)",
    )
    parser.add_argument("--host", help="override service.host")
    parser.add_argument("--port", type=int, help="override service.port")
    parser.add_argument(
        "--workers",
        type=int,
        default=_workers_from_environment(),
        help=f"worker processes; override service.workers (default: ${WORKERS_ENV} if set)",
    )


def _workers_from_environment() -> int | None:
    value = os.environ.get(WORKERS_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return -1  # refused with the other bad values, as a config error


def run(args: argparse.Namespace) -> int:
    """Load the config (exit 2 on any problem) and serve until interrupted."""
    import uvicorn

    from llama_entra.app.main import create_app, open_resources
    from llama_entra.config import load_config
    from llama_entra.logs import configure_logging
    from llama_entra.preflight import check_config_files, prepare_directory

    config = load_config(args.config)
    check_config_files(config, source=str(args.config))
    prepare_directory(config.service.state_dir, source=str(args.config), key="service.state_dir")
    service = config.service
    overrides = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if value is not None
    }
    if overrides:
        service = _overridden(service, overrides)
        config = config.model_copy(update={"service": service})
    configure_logging(service.log_level, service.log_format)
    limit_malloc_arenas()  # before Llama Stack starts any thread (see the module)
    common: dict[str, object] = {
        "host": service.host,
        "port": service.port,
        "log_config": None,
        "access_log": False,  # llama-entra logs each request itself, with the principal
        "timeout_graceful_shutdown": service.shutdown_timeout_seconds,
    }
    if service.workers > 1:
        # Each worker process loads the config itself and keeps its own token.
        os.environ[CONFIG_ENV] = str(args.config.resolve())
        with _multiprocess_metrics():
            uvicorn.run(
                "llama_entra.app.cli:app_from_environment",
                factory=True,
                workers=service.workers,
                **common,  # type: ignore[arg-type]
            )
        return 0

    from llama_entra.serving import GracefulServer
    from llama_entra.tls import TlsReloader

    tls = None
    if service.tls is not None:
        tls = TlsReloader(service.tls, source=str(args.config), key="service.tls")
        context = tls.context
        common["ssl_context_factory"] = lambda _config, _default: context

    tracing = _start_tracing(config)

    async def serve() -> None:
        # Resources are built before uvicorn starts, so a bad run config is one line, exit 2.
        async with open_resources(config) as resources:
            app = create_app(config, resources=resources)
            if tracing is not None:
                tracing.instrument_fastapi(app)
            server = GracefulServer(
                uvicorn.Config(app, **common),  # type: ignore[arg-type]
                on_tick=tls.check if tls is not None else None,
            )
            await server.serve()

    try:
        asyncio.run(serve())
    finally:
        if tracing is not None:
            tracing.shutdown()
    return 0


def _overridden(service: ServiceConfig, overrides: dict[str, object]) -> ServiceConfig:
    """``service`` with command-line (or environment) values, validated like the file's."""
    from pydantic import ValidationError

    from llama_entra.config import ServiceConfig
    from llama_entra.errors import ConfigError

    try:
        return ServiceConfig.model_validate(service.model_dump() | overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = "--" + str(first["loc"][0]) if first["loc"] else "--workers"
        if flag == "--workers":
            flag += f" (or ${WORKERS_ENV})"
        problem = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(problem, key=flag) from None


@contextlib.contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """A directory for every worker's metrics (prometheus-client's multiprocess mode) while
    the block runs, removed after it; one named by the environment is kept as it is."""
    if os.environ.get(_MULTIPROC_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="llama-entra-metrics-") as directory:
        os.environ[_MULTIPROC_ENV] = directory
        try:
            yield
        finally:
            del os.environ[_MULTIPROC_ENV]


def _start_tracing(config: LlamaEntraConfig) -> Tracing | None:
    """Tracing for this process when configured (see ``llama_entra.telemetry``), else None."""
    from llama_entra.telemetry.settings import tracing_settings

    settings = tracing_settings(config.telemetry, default_service_name="llama-entra")
    if settings is None:
        return None  # nothing imported or installed: tracing off costs nothing
    from llama_entra.telemetry.setup import start_tracing

    return start_tracing(settings)


def app_from_environment() -> FastAPI:
    """uvicorn factory for worker processes: the config named by ``$LLAMA_ENTRA_CONFIG``."""
    from llama_entra.app.main import create_app
    from llama_entra.config import load_config

    config = load_config(os.environ[CONFIG_ENV])
    app = create_app(config)
    tracing = _start_tracing(config)
    if tracing is not None:
        tracing.instrument_fastapi(app)
    return app
