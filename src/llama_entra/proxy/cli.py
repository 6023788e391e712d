"""``llama-entra proxy``: run the Entra-authenticating sidecar under uvicorn."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``llama-entra proxy``; flags override the ``proxy:`` section."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path(os.environ.get("LLAMA_ENTRA_CONFIG", "llama-entra.yaml")),
        help="config with azure_entra_id and proxy (default: $LLAMA_ENTRA_CONFIG or "
        "llama-entra.yaml)",
    )
    parser.add_argument("--upstream", help="Azure OpenAI base URL (overrides proxy.upstream)")
    parser.add_argument("--host", help="address to bind (overrides proxy.host)")
    parser.add_argument("--port", type=int, help="port (overrides proxy.port)")


def run(args: argparse.Namespace) -> int:
    """Load the config (exit 2 on any problem) and serve until interrupted."""
    import uvicorn
    from pydantic import ValidationError

    from llama_entra.config import ProxyConfig, load_config
    from llama_entra.errors import ConfigError
    from llama_entra.logs import configure_logging
    from llama_entra.preflight import check_config_files
    from llama_entra.proxy.app import create_proxy_app
    from llama_entra.serving import GracefulServer
    from llama_entra.tls import TlsReloader

    config = load_config(args.config)
    changes = {
        key: value
        for key, value in (("upstream", args.upstream), ("host", args.host), ("port", args.port))
        if value is not None
    }
    if changes:
        try:
            proxy = ProxyConfig.model_validate(config.proxy.model_dump() | changes)
        except ValidationError as exc:
            first = exc.errors()[0]
            flag = "--" + str(first["loc"][0]) if first["loc"] else "--upstream"
            raise ConfigError(str(first["msg"]).removeprefix("Value error, "), key=flag) from None
        config = config.model_copy(update={"proxy": proxy})
    check_config_files(config, source=str(args.config))
    configure_logging(config.service.log_level, config.service.log_format)
    tls = None
    if config.proxy.tls is not None:
        tls = TlsReloader(config.proxy.tls, source=str(args.config), key="proxy.tls")
    context = tls.context if tls is not None else None
    from starlette.types import ASGIApp

    from llama_entra.telemetry.settings import tracing_settings

    app: ASGIApp = create_proxy_app(config)
    settings = tracing_settings(config.telemetry, default_service_name="llama-entra-proxy")
    tracing = None
    if settings is not None:  # off: nothing imported or installed
        from llama_entra.telemetry.setup import start_tracing

        tracing = start_tracing(settings)
        if tracing is not None:
            app = tracing.wrap_asgi(app)
    server = GracefulServer(
        uvicorn.Config(
            app,
            host=config.proxy.host,
            port=config.proxy.port,
            log_config=None,
            timeout_graceful_shutdown=config.proxy.shutdown_timeout_seconds,  # type: ignore[arg-type]
            server_header=False,  # the upstream's Date and Server headers pass through
            date_header=False,
            ssl_context_factory=(lambda _config, _default: context) if context else None,
        ),
        on_tick=tls.check if tls is not None else None,
    )
    try:
        server.run()
    finally:
        if tracing is not None:
            tracing.shutdown()
    return 0 if server.started else 1
