"""Where things run: ``service``, ``llama_stack``, ``proxy``, the index, ``telemetry``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from llama_entra.config.base import StrictModel
from llama_entra.config.entra import AzureDeployments

__all__ = [
    "ConversationIndexConfig",
    "FeedbackConfig",
    "LlamaStackConfig",
    "PostgresConfig",
    "ProxyConfig",
    "ServiceConfig",
    "TelemetryConfig",
    "TlsConfig",
]


class TlsConfig(StrictModel):
    """Inbound HTTPS: certificate, key and optional client-certificate CA (mTLS)."""

    cert_file: Path = Field(description="PEM certificate chain (server first); reloaded on change.")
    key_file: Path = Field(description="PEM private key of the certificate; reloaded on change.")
    key_password: SecretStr | None = Field(None, description="Password of the key, if any.")
    client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; set: every client must present a certificate it signed."
    )


class ServiceConfig(StrictModel):
    """Where and how the FastAPI service listens."""

    name: str = Field(
        "llama-entra",
        min_length=1,
        max_length=256,
        description="The service's name, as `GET /v1/info` reports it (lightspeed-stack's `name`).",
    )
    host: str = Field("127.0.0.1", description="Address to bind; loopback by default.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0 picks a free one).")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="uvicorn worker processes (one per CPU core to use); each has its own token "
        "and Llama Stack client, `/metrics` sums them all. Overridden by `serve --workers` and "
        "`$LLAMA_ENTRA_WORKERS`.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Log level of the service and uvicorn."
    )
    log_format: Literal["text", "json"] = Field("text", description="Plain or JSON log lines.")
    state_dir: Path = Field(
        Path(".llama-entra"), description="Directory for state the service keeps on disk."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted; larger gives 413."
    )
    shutdown_timeout_seconds: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="On SIGTERM/Ctrl-C, how long in-flight requests and streams may finish; "
        "idle connections are closed at once.",
    )
    tls: TlsConfig | None = Field(None, description="Serve HTTPS (absent: plain HTTP).")
    admission_max_lag_ms: int = Field(
        1000,
        ge=0,
        le=60_000,
        description="New Azure calls wait their turn while a worker's event loop runs this many "
        "milliseconds late (overloaded), so the streams it carries keep their pace and new calls "
        "do not time out inside; 0 starts every call at once.",
    )
    admission_max_wait_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="How long a new call may wait its turn on an overloaded worker; then 503 "
        "with `Retry-After`.",
    )

    @model_validator(mode="after")
    def _tls_runs_in_one_process(self) -> ServiceConfig:
        if self.tls is not None and self.workers > 1:
            raise ValueError("tls needs workers: 1 (scale with replicas instead)")
        return self


class LlamaStackConfig(StrictModel):
    """How the service reaches Llama Stack: in-process library or a server."""

    mode: Literal["library", "service"] = Field(
        "library", description="library: Llama Stack in-process; service: a Llama Stack server."
    )
    config: Path | None = Field(
        Path("run-configs/azure.yaml"),
        description="Library mode: the Llama Stack run config, enriched at start-up.",
    )
    url: str = Field("http://localhost:8321", description="Service mode: Llama Stack server URL.")
    api_key: SecretStr | None = Field(
        None, description="Service mode: bearer token for a protected Llama Stack server."
    )
    provider_data_header: str | None = Field(
        None,
        description="Header carrying per-request provider data; default: the installed "
        "backend's (X-LlamaStack-Provider-Data for llama-stack, X-OGX-Provider-Data for OGX).",
    )
    provider_data: dict[str, Any] = Field(
        default_factory=dict,
        description="Static provider data merged into every call (never the Azure keys).",
    )
    default_model: str | None = Field(
        None, description="Model used when a query names none (provider/model or plain id)."
    )
    timeout_seconds: float = Field(
        120.0, gt=0, description="Service mode: read timeout for calls to the Llama Stack server."
    )

    @model_validator(mode="after")
    def _mode_needs_its_field(self) -> LlamaStackConfig:
        if self.mode == "library" and self.config is None:
            raise ValueError("config is required in library mode")
        return self


class ProxyConfig(StrictModel):
    """The sidecar reverse proxy in front of Azure OpenAI."""

    upstream: str | None = Field(
        None, description="Azure OpenAI base URL, e.g. https://RESOURCE.openai.azure.com/openai/v1"
    )
    upstreams: AzureDeployments | None = Field(
        None,
        description="Several Azure OpenAI resources with the same deployments (upstream, when "
        "set and not listed, comes first): failover on 429, refused connections and 503.",
    )
    host: str = Field("127.0.0.1", description="Address to bind; loopback by default.")
    port: int = Field(8081, ge=0, le=65535, description="TCP port.")
    connect_timeout_seconds: float = Field(10.0, gt=0, description="Upstream connect timeout.")
    read_timeout_seconds: float = Field(
        300.0, gt=0, description="Longest silence between upstream bytes (no total cap)."
    )
    ca_bundle: Path | None = Field(
        None, description="Extra CA trusted for the upstream, next to the system CAs."
    )
    replay_limit_bytes: int = Field(
        1_048_576,
        ge=0,
        description="Request bodies up to this size are buffered so an upstream 401 can be "
        "retried with a fresh token; larger ones stream through without a retry.",
    )
    shutdown_timeout_seconds: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="On SIGTERM/Ctrl-C, how long in-flight requests and streams may finish; "
        "idle connections are closed at once.",
    )
    tls: TlsConfig | None = Field(None, description="Serve HTTPS (absent: plain HTTP).")

    @field_validator("upstream")
    @classmethod
    def _upstream_is_http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("upstreams")
    @classmethod
    def _upstreams_are_http_urls(cls, value: AzureDeployments | None) -> AzureDeployments | None:
        if value is None:
            return None
        for url in value.base_urls:
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"base_urls: {url!r} is not an http(s) URL")
        urls = [url.rstrip("/") for url in value.base_urls]
        return value.model_copy(update={"base_urls": urls})

    def upstream_urls(self) -> list[str]:
        """Every upstream base URL in order: ``upstream`` first unless ``upstreams`` lists it."""
        listed = list(self.upstreams.base_urls) if self.upstreams is not None else []
        if self.upstream is not None and self.upstream not in listed:
            listed.insert(0, self.upstream)
        return listed


class PostgresConfig(StrictModel):
    """A PostgreSQL database; the field names of Llama Stack's ``sql_postgres`` backend."""

    host: str = Field("localhost", description="Server host name or address.")
    port: int = Field(5432, ge=1, le=65535, description="Server port.")
    db: str = Field("llamastack", description="Database name.")
    user: str = Field(description="User name.")
    password: SecretStr | None = Field(None, description="Password (never logged).")
    ssl_mode: (
        Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = Field(None, description="libpq's sslmode; absent: PGSSLMODE or libpq's default.")
    ca_cert_path: Path | None = Field(
        None, description="CA bundle that verifies the server (verify-ca, verify-full)."
    )


class ConversationIndexConfig(StrictModel):
    """Where the index of conversations per caller lives (what ``GET /v1/conversations`` lists)."""

    type: Literal["auto", "sqlite", "postgres"] = Field(
        "auto",
        description="auto: `postgres` when set, else the PostgreSQL database of a library-mode "
        "run config, else SQLite in service.state_dir.",
    )
    postgres: PostgresConfig | None = Field(
        None,
        description="The database shared by every replica (service mode needs it); a section "
        "whose host is empty counts as absent, so one file serves with and without a database.",
    )

    @field_validator("postgres", mode="before")
    @classmethod
    def _empty_host_means_absent(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value.get("host"):
            return None
        return value


class FeedbackConfig(StrictModel):
    """Callers' feedback on answers (`POST /v1/feedback`), kept in the conversation index's DB.

    That is SQLite in `service.state_dir`, or PostgreSQL when the index is there.
    """

    enabled: bool = Field(
        False,
        description="Accept feedback (off: `POST /v1/feedback` is 403, as in lightspeed-stack). "
        "`PUT /v1/feedback/status` changes it until the process restarts, in that process only.",
    )


class TelemetryConfig(StrictModel):
    """OpenTelemetry tracing; off unless this says so or ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set.

    ``OTEL_SDK_DISABLED=true`` turns tracing off whatever this says. Unset keys fall back to
    OpenTelemetry's own variables (``OTEL_EXPORTER_OTLP_PROTOCOL``, ``OTEL_SERVICE_NAME``, ...).
    """

    tracing: bool = Field(
        False, description="Export traces even when no OTEL_EXPORTER_OTLP_*ENDPOINT is set."
    )
    endpoint: str | None = Field(
        None,
        description="OTLP endpoint (HTTP: base URL, /v1/traces is appended; gRPC: host:port "
        "URL); default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT.",
    )
    protocol: Literal["http/protobuf", "grpc"] | None = Field(
        None, description="OTLP protocol; default: OTEL_EXPORTER_OTLP_PROTOCOL or http/protobuf."
    )
    service_name: str | None = Field(
        None, description="service.name of the spans; default: OTEL_SERVICE_NAME or llama-entra."
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value
