"""Service configuration: the pydantic models of ``llama-entra.yaml`` and how it is loaded.

Every string value may be ``${env.NAME}`` (the variable must be set) or
``${env.NAME:=default}`` (the default when it is unset or empty), also inside a longer string.
Unknown keys are rejected, secrets are ``SecretStr``, and every problem becomes one
``ConfigError`` line naming the file, the key and the problem.

Relative paths in the file (run config, certificate, CA bundle) are resolved against the
current working directory, as the commands in README are run from the repository root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from llama_entra.errors import ConfigError

__all__ = [
    "ApiKeyAuthConfig",
    "AuthAction",
    "AuthenticationConfig",
    "AuthorizationRule",
    "AzureEntraIdConfig",
    "ConversationIndexConfig",
    "CredentialKind",
    "CustomAuthConfig",
    "JwkAuthConfig",
    "LlamaEntraConfig",
    "LlamaStackConfig",
    "PostgresConfig",
    "ProxyConfig",
    "ServiceConfig",
    "TelemetryConfig",
    "TlsConfig",
    "expand_env",
    "load_config",
    "parse_config",
]

PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"

CredentialKind = Literal[
    "client_secret", "certificate", "managed_identity", "workload_identity", "default"
]

_ENV_PATTERN = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?::=([^}]*))?\}")


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        """An empty string for an optional key (``${env.NAME:=}``) is the same as leaving it out.

        Without this an empty path would silently become the current directory.
        """
        if not isinstance(data, dict):
            return data
        optional = {name for name, field in cls.model_fields.items() if field.default is None}
        return {k: None if k in optional and v == "" else v for k, v in data.items()}


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

    host: str = Field("127.0.0.1", description="Address to bind; loopback by default.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0 picks a free one).")
    workers: int = Field(1, ge=1, description="uvicorn worker processes; each has its own token.")
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


class AzureEntraIdConfig(StrictModel):
    """The Entra ID identity whose tokens authenticate Azure OpenAI inference."""

    tenant_id: str | None = Field(None, description="Directory (tenant) id.")
    client_id: str | None = Field(
        None, description="Application (client) id; for managed identity, a user-assigned id."
    )
    credential: CredentialKind = Field(
        "client_secret", description="Which azure-identity credential to use."
    )
    client_secret: SecretStr | None = Field(None, description="Client secret (client_secret).")
    certificate_path: Path | None = Field(
        None, description="PEM or PFX file with the private key (certificate)."
    )
    certificate_password: SecretStr | None = Field(
        None, description="Password of the certificate file, if any."
    )
    send_certificate_chain: bool = Field(
        False, description="Send the x5c chain (subject name/issuer authentication)."
    )
    federated_token_file: Path | None = Field(
        None,
        description="workload_identity: projected token file; default AZURE_FEDERATED_TOKEN_FILE.",
    )
    authority_host: str = Field(
        PUBLIC_AUTHORITY, description="Entra authority: public, sovereign cloud, or the emulator."
    )
    ca_bundle: Path | None = Field(
        None,
        description="CA bundle (PEM) trusted for the authority instead of the system CAs, "
        "e.g. the emulator's ca.pem.",
    )
    scope: str = Field(COGNITIVE_SERVICES_SCOPE, description="Scope of the requested token.")
    refresh_margin_seconds: int = Field(
        300, ge=0, description="Refresh when less than this is left, or at the token's refresh_on."
    )
    timeout_seconds: float = Field(
        10.0, gt=0, description="Longest wait for one token request before it counts as failed."
    )
    api_base: str | None = Field(
        None, description="Azure OpenAI base URL; default: base_url of the remote::azure provider."
    )

    @model_validator(mode="after")
    def _credential_has_its_fields(self) -> AzureEntraIdConfig:
        required: dict[str, tuple[str, ...]] = {
            "client_secret": ("tenant_id", "client_id", "client_secret"),
            "certificate": ("tenant_id", "client_id", "certificate_path"),
            "workload_identity": (),
            "managed_identity": (),
            "default": (),
        }
        missing = [name for name in required[self.credential] if _blank(getattr(self, name))]
        if self.credential == "workload_identity":
            # AKS injects these; config values win over them (see llama_entra.entra.credentials).
            fallbacks = {
                "tenant_id": "AZURE_TENANT_ID",
                "client_id": "AZURE_CLIENT_ID",
                "federated_token_file": "AZURE_FEDERATED_TOKEN_FILE",
            }
            missing = [
                f"{name} (or {env})"
                for name, env in fallbacks.items()
                if _blank(getattr(self, name)) and not os.environ.get(env)
            ]
        if missing:
            raise ValueError(
                f"credential {self.credential} needs {', '.join(missing)} (missing or empty)"
            )
        if not self.authority_host.startswith("https://"):
            raise ValueError("authority_host must be an https:// URL")
        return self


def _blank(value: object) -> bool:
    """Unset, or set to an empty string (e.g. ``${env.NAME:=}``)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or value == ""


AuthAction = Literal[
    "query",
    "streaming_query",
    "conversations",
    "chat",
    "responses",
    "models",
    "info",
    "metrics",
    "*",
]


class ApiKeyAuthConfig(StrictModel):
    """``api_key``: named keys, compared in constant time, kept only as hashes."""

    keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="Key name (the principal) to key."
    )
    keys_file: Path | None = Field(
        None,
        description="File with one `name:key` (or bare key) per line; re-read when it changes.",
    )


class CustomAuthConfig(StrictModel):
    """``custom``: delegate each decision to an HTTP endpoint (Llama Stack's protocol)."""

    endpoint: str = Field(description="URL the service POSTs {api_key, request} to.")
    timeout_seconds: float = Field(5.0, gt=0, description="Slower answers count as unavailable.")
    cache_ttl_seconds: float = Field(
        60.0,
        ge=0,
        description="Longest reuse of an allow decision for the same key, method, path, query "
        "and cache_key_headers (0: never); the endpoint's Cache-Control may shorten it.",
    )
    cache_key_headers: list[str] = Field(
        default_factory=list,
        description="Request headers the endpoint decides on; their values join the cache key.",
    )
    ca_bundle: Path | None = Field(None, description="Extra CA for the endpoint.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


class JwkAuthConfig(StrictModel):
    """``jwk``: JWT bearer tokens verified against a JWKS (Entra ID, Keycloak, ...)."""

    jwks_url: str = Field(description="Where the signing keys are published.")
    issuer: str | None = Field(None, description="Required `iss`; required here too.")
    audience: list[str] = Field(
        default_factory=list, description="Accepted `aud` values; at least one required."
    )
    allow_any_audience_and_issuer: bool = Field(
        False,
        description="Accept tokens without checking an unset issuer or audience (unsafe: any "
        "token signed by the key set passes); logged as a warning at start-up.",
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256"], description="Accepted signing algorithms."
    )
    leeway_seconds: int = Field(60, ge=0, description="Clock skew allowed on exp/nbf/iat.")
    principal_claim: str = Field("sub", description="Claim naming the caller (Entra: oid).")
    roles_claim: str = Field("roles", description="Claim holding roles (list or space-separated).")
    jwks_cache_seconds: int = Field(3600, ge=0, description="How long fetched keys are reused.")
    unknown_kid_refetch_seconds: float = Field(
        10.0, ge=0, description="Least time between fetches caused by tokens with unknown kids."
    )
    timeout_seconds: float = Field(5.0, gt=0, description="JWKS fetch timeout.")
    ca_bundle: Path | None = Field(None, description="Extra CA for the JWKS URL.")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
        wrong = [alg for alg in value if alg not in allowed]
        if wrong or not value:
            raise ValueError(
                f"only asymmetric algorithms are allowed ({', '.join(sorted(allowed))})"
            )
        return value

    @model_validator(mode="after")
    def _issuer_and_audience_are_checked(self) -> JwkAuthConfig:
        missing = [
            name
            for name, unset in (("issuer", _blank(self.issuer)), ("audience", not self.audience))
            if unset
        ]
        if missing and not self.allow_any_audience_and_issuer:
            raise ValueError(
                f"{' and '.join(missing)} required: without them a token minted for any other "
                "application sharing the key set is accepted (opt out with "
                "allow_any_audience_and_issuer: true)"
            )
        return self


class AuthorizationRule(StrictModel):
    """Callers with ``role`` ("*": everyone authenticated) may perform ``actions``."""

    role: str = Field(description="A role of the principal, or * for any caller.")
    actions: list[AuthAction] = Field(description="Allowed actions; * means all.")


class AuthenticationConfig(StrictModel):
    """Inbound authentication of callers (see ``llama_entra.auth``)."""

    module: Literal["noop", "api_key", "custom", "jwk"] = Field(
        "noop", description="How callers prove who they are."
    )
    api_key: ApiKeyAuthConfig | None = Field(None, description="Settings of `api_key`.")
    custom: CustomAuthConfig | None = Field(None, description="Settings of `custom`.")
    jwk: JwkAuthConfig | None = Field(None, description="Settings of `jwk`.")
    rules: list[AuthorizationRule] = Field(
        default_factory=list,
        description="Role to actions; empty: every authenticated caller may do everything.",
    )
    metrics_require_auth: bool = Field(False, description="Whether /metrics needs a caller.")

    @model_validator(mode="after")
    def _module_has_its_section(self) -> AuthenticationConfig:
        if self.module != "noop" and getattr(self, self.module) is None:
            raise ValueError(f"module {self.module} needs a `{self.module}:` section")
        return self


class ProxyConfig(StrictModel):
    """The sidecar reverse proxy in front of Azure OpenAI."""

    upstream: str | None = Field(
        None, description="Azure OpenAI base URL, e.g. https://RESOURCE.openai.azure.com/openai/v1"
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


class LlamaEntraConfig(StrictModel):
    """The whole ``llama-entra.yaml``."""

    service: ServiceConfig = Field(default_factory=ServiceConfig)
    llama_stack: LlamaStackConfig = Field(default_factory=LlamaStackConfig)
    azure_entra_id: AzureEntraIdConfig | None = Field(
        None, description="Absent: no Entra; static keys in the run config still work."
    )
    authentication: AuthenticationConfig = Field(default_factory=AuthenticationConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    conversation_index: ConversationIndexConfig = Field(default_factory=ConversationIndexConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)


def expand_env(value: Any, *, environ: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Return ``value`` with ``${env.NAME}`` / ``${env.NAME:=default}`` expanded in strings.

    Walks mappings and lists; ``path`` is the dotted key of ``value`` for error messages.
    Raises ``ConfigError`` naming the key when a variable without default is unset.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {k: expand_env(v, environ=env, path=_join(path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ=env, path=f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found:
            return found
        if default is not None:
            return default
        if found is not None:  # set but empty, and no default: empty is what was asked for
            return found
        raise ConfigError(f"environment variable {name} is not set", key=path or None)

    return _ENV_PATTERN.sub(substitute, value)


def parse_config(raw: Any, *, source: str = "<config>") -> LlamaEntraConfig:
    """Validate an already-loaded YAML document (env vars expanded here) into the config."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping", file=source)
    try:
        expanded = expand_env(raw)
        return LlamaEntraConfig.model_validate(expanded)
    except ConfigError as exc:
        raise ConfigError(exc.problem, file=source, key=exc.key) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or None
        raise ConfigError(_describe(first), file=source, key=key) from None


def load_config(path: str | Path) -> LlamaEntraConfig:
    """Read, expand and validate ``path``; any problem is a one-line ``ConfigError``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc.__class__.__name__}", file=source) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"malformed YAML{where}", file=source) from None
    return parse_config(raw, source=source)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(error: Any) -> str:
    """One line from a pydantic error, without echoing the (possibly secret) input."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
