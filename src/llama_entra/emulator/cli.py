"""``llama-entra emulator``: run the local Entra ID + Azure OpenAI emulator over HTTPS.

On start it writes ``emulator.json`` into the state directory (URL, CA path, tenant, clients
and their object ids, models, quota) and prints the environment variables that point
llama-entra at it. ``python -m llama_entra.emulator`` does the same.

Quota per chat deployment, each option repeatable: ``--rpm MODEL=N`` (requests per minute),
``--tpm MODEL=N`` (tokens per minute), ``--context-window MODEL=N`` (tokens; default 1047576,
GPT-4.1's). Without ``--rpm``/``--tpm`` a deployment is not rate-limited.
``POST /_emulator/limits`` changes them at run time (``emulator.controls``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from llama_entra.errors import ConfigError
from llama_entra.serving import GracefulServer

if TYPE_CHECKING:
    from llama_entra.emulator.limits import DeploymentLimits

__all__ = ["add_arguments", "main", "run"]

READY_FILE = "emulator.json"
SHUTDOWN_TIMEOUT_SECONDS = 5  # how long a stream may finish after SIGTERM/Ctrl-C

_QUOTA_OPTIONS = {
    "--rpm": "requests per minute a chat deployment admits",
    "--tpm": "estimated tokens per minute a chat deployment admits",
    "--context-window": "context window of a chat deployment in tokens (default 1047576)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``llama-entra emulator``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8443, help="HTTPS port; 0 picks a free one")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".llama-entra/emulator"),
        help="where ca.pem, certificates and emulator.json go",
    )
    parser.add_argument("--token-lifetime", type=int, default=3600, help="seconds a token lives")
    parser.add_argument("--tenant", help="tenant id (default: a fixed emulator tenant)")
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET",
        help="register a client secret app (repeatable; the demo client always exists)",
    )
    parser.add_argument(
        "--model", action="append", default=[], help="deployment to serve (repeatable)"
    )
    parser.add_argument(
        "--embedding-model",
        action="append",
        default=[],
        help="embedding deployment to serve (repeatable; default text-embedding-3-small)",
    )
    parser.add_argument(
        "--embedding-dimension",
        type=int,
        default=1536,
        help="length of embedding vectors when a request names no dimensions",
    )
    parser.add_argument(
        "--static-api-key", help="API key Azure OpenAI also accepts (default: a demo key)"
    )
    for flag, meaning in _QUOTA_OPTIONS.items():
        parser.add_argument(
            flag, action="append", default=[], metavar="MODEL=N", help=f"{meaning} (repeatable)"
        )


def _quota(args: argparse.Namespace, models: tuple[str, ...]) -> dict[str, DeploymentLimits]:
    """The ``--rpm``/``--tpm``/``--context-window`` options as limits per deployment."""
    from llama_entra.emulator.limits import DeploymentLimits

    values: dict[str, dict[str, int]] = {}
    for flag in _QUOTA_OPTIONS:
        name = flag.removeprefix("--").replace("-", "_")
        for entry in getattr(args, name):
            model, sep, raw = entry.rpartition("=")
            if not sep or not model or not raw.isdigit():
                raise ConfigError("expected MODEL=N with N a whole number", key=flag)
            if model not in models:
                raise ConfigError(f"no chat deployment named {model!r} (see --model)", key=flag)
            if name == "context_window" and int(raw) < 1:
                raise ConfigError("must be at least 1", key=flag)
            values.setdefault(model, {})[name] = int(raw)
    return {model: DeploymentLimits(**given) for model, given in values.items()}


def run(args: argparse.Namespace) -> int:
    """Start the emulator and serve until interrupted."""
    from llama_entra.emulator.app import create_emulator_app
    from llama_entra.emulator.state import DEFAULT_CERT_CLIENT_ID, EmulatorSettings
    from llama_entra.emulator.tls import ensure_client_certificate, ensure_server_certificates

    if args.token_lifetime < 1:
        raise ConfigError("must be at least 1", key="--token-lifetime")
    if not 0 <= args.port <= 65535:
        raise ConfigError("must be between 0 and 65535", key="--port")
    settings = EmulatorSettings(token_lifetime=args.token_lifetime)
    if args.tenant:
        settings.tenant_id = args.tenant
    for entry in args.client:
        client_id, sep, secret = entry.partition(":")
        if not sep or not client_id or not secret:
            raise ConfigError("expected ID:SECRET", key="--client")
        settings.clients[client_id] = secret
    if args.model:
        settings.models = tuple(args.model)
    if args.embedding_model:
        settings.embedding_models = tuple(args.embedding_model)
    if not 1 <= args.embedding_dimension <= 8192:
        raise ConfigError("must be between 1 and 8192", key="--embedding-dimension")
    settings.embedding_dimension = args.embedding_dimension
    if args.static_api_key:
        settings.static_api_key = args.static_api_key
    settings.deployment_limits = _quota(args, settings.models)
    state_dir: Path = args.state_dir.resolve()
    try:
        certificates = ensure_server_certificates(state_dir)
        cert_path = state_dir / "client-cert.pem"
        settings.certificate_clients[DEFAULT_CERT_CLIENT_ID] = ensure_client_certificate(
            cert_path, DEFAULT_CERT_CLIENT_ID
        )
    except OSError as exc:
        raise ConfigError(f"cannot write certificates: {exc.strerror}", key="--state-dir") from None

    app = create_emulator_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=str(certificates.cert_path),
        ssl_keyfile=str(certificates.key_path),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_SECONDS,
    )
    ready_file = state_dir / READY_FILE

    def announce(port: int) -> None:
        host = "127.0.0.1" if args.host in ("0.0.0.0", "127.0.0.1") else args.host  # noqa: S104
        url = f"https://{host}:{port}"
        _announce(_describe(settings, url, certificates.ca_path, cert_path), ready_file)

    server = GracefulServer(config, on_ready=announce)  # reports the port of --port 0
    server.run()
    return 0 if server.started else 1


def _describe(settings: Any, url: str, ca_path: Path, cert_path: Path) -> dict[str, Any]:
    from llama_entra.emulator.limits import DeploymentLimits
    from llama_entra.emulator.roles import SYSTEM_ASSIGNED, object_id_for
    from llama_entra.emulator.state import DEFAULT_CERT_CLIENT_ID, DEFAULT_CLIENT_ID

    tenant = settings.tenant_id
    quota = {
        model: dataclasses.asdict(settings.deployment_limits.get(model) or DeploymentLimits())
        for model in settings.models
    }
    return {
        "url": url,
        "azure_base_url": f"{url}/openai/v1",
        "ca_path": str(ca_path),
        "tenant_id": settings.tenant_id,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": settings.clients[DEFAULT_CLIENT_ID],
        "client_object_id": object_id_for(tenant, DEFAULT_CLIENT_ID),
        "cert_client_id": DEFAULT_CERT_CLIENT_ID,
        "cert_client_object_id": object_id_for(tenant, DEFAULT_CERT_CLIENT_ID),
        "managed_identity_object_id": object_id_for(tenant, SYSTEM_ASSIGNED),
        "cert_path": str(cert_path),
        "models": list(settings.models),
        "limits": quota,
        "embedding_models": list(settings.embedding_models),
        "embedding_dimension": settings.embedding_dimension,
        "static_api_key": settings.static_api_key,
        "managed_identity_endpoint": f"{url}/msi/token",
        "managed_identity_header": settings.managed_identity_header,
        "pid": os.getpid(),
    }


def _announce(info: dict[str, Any], ready_file: Path) -> None:
    """Write the ready file (0600: it holds demo secrets) and print how to use the emulator."""
    temporary = ready_file.with_name(f".{ready_file.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2)
    os.replace(temporary, ready_file)
    print(
        f"llama-entra emulator on {info['url']} (Entra ID and Azure OpenAI)\n"
        f"  CA certificate: {info['ca_path']}\n"
        f"  details:        {ready_file}\n"
        "export AZURE_AUTHORITY_HOST={url} AZURE_CA_BUNDLE={ca_path} \\\n"
        "  AZURE_TENANT_ID={tenant_id} AZURE_CLIENT_ID={client_id} \\\n"
        "  AZURE_CLIENT_SECRET={client_secret} AZURE_API_BASE={azure_base_url} \\\n"
        "  AZURE_MODEL={model} SSL_CERT_FILE={ca_path}".format(**info, model=info["models"][0]),
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llama_entra.emulator``."""
    parser = argparse.ArgumentParser(prog="python -m llama_entra.emulator")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"llama-entra emulator: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
