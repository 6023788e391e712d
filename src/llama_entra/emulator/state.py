"""What the emulator knows: clients, issued tokens, quota, role assignments, counters, faults.

One ``EmulatorState`` per running emulator, shared by its Entra, Azure OpenAI and control
routes. Everything runs on one event loop, so plain attributes need no locks. ``clock`` is
injectable (and ``advance_clock`` moves it forward), so token expiry and the rate-limit window
can be tested without waiting.
"""

from __future__ import annotations

import collections
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from llama_entra.emulator.limits import DeploymentLimits, UsageWindow
from llama_entra.emulator.user_directory import UserDirectory

__all__ = ["OUTCOMES", "EmulatorSettings", "EmulatorState", "Faults", "IssuedToken"]

DEFAULT_TENANT = "8f0e6a3c-0000-4e6a-9d2b-emulator0001"
DEFAULT_CLIENT_ID = "5a7c1f00-0000-4b1e-8c11-emulatorapp1"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"  # noqa: S105 - a documented demo value
DEFAULT_CERT_CLIENT_ID = "5a7c1f00-0000-4b1e-8c11-emulatorcert"
DEFAULT_STATIC_API_KEY = "emulator-static-api-key"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
DEFAULT_EMBEDDING_DIMENSION = 1536
DEFAULT_TOKEN_LIFETIME = 3600
_RECENT_REQUESTS = 50
_DEMO_SECRET = DEFAULT_CLIENT_SECRET
# How an Azure OpenAI call of a deployment ended (``azure_calls`` in the counters).
OUTCOMES = (
    "ok",
    "throttled",
    "content_filter",
    "context_length_exceeded",
    "permission_denied",
    "unauthorized",
    "not_found",
    "error",
)


@dataclass
class EmulatorSettings:
    """Start-up settings: who may get tokens, which models exist, which static key works."""

    tenant_id: str = DEFAULT_TENANT
    clients: dict[str, str] = field(
        default_factory=lambda: {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
    )
    certificate_clients: dict[str, x509.Certificate] = field(default_factory=dict)
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    embedding_models: tuple[str, ...] = (DEFAULT_EMBEDDING_MODEL,)
    embedding_dimension: int = DEFAULT_EMBEDDING_DIMENSION
    static_api_key: str | None = DEFAULT_STATIC_API_KEY
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    managed_identity_header: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    deployment_limits: dict[str, DeploymentLimits] = field(default_factory=dict)


@dataclass
class Faults:
    """Failures and delays a test asked for; ``reset`` clears them."""

    fail_token_requests: int = 0
    fail_status: int = 503
    delay_token_requests: int = 0
    delay_seconds: float = 0.0
    entra_down: bool = False
    stream_delay: float = 0.0
    first_chunk_delay: float = 0.0
    break_streams_after: int | None = None  # content chunks sent before the connection drops
    throttle_next: int = 0
    throttle_retry_after: float = 1.0
    throttle_model: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token the emulator issued: whom for (client, principal), what for, until when."""

    client_id: str
    expires_at: float
    audience: str
    object_id: str


@dataclass
class EmulatorState:
    """Mutable state behind the routes."""

    settings: EmulatorSettings
    signing_key: rsa.RSAPrivateKey
    clock: Callable[[], float] = time.time
    token_lifetime: int = 0
    refresh_in: int | None = None
    faults: Faults = field(default_factory=Faults)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    token_requests: int = 0
    token_requests_by_client: collections.Counter[str] = field(default_factory=collections.Counter)
    completions: int = 0
    embeddings: int = 0
    responses: int = 0
    model_listings: int = 0
    unauthorized: int = 0
    recent_headers: collections.deque[dict[str, str]] = field(
        default_factory=lambda: collections.deque(maxlen=_RECENT_REQUESTS)
    )
    limits: dict[str, DeploymentLimits] = field(default_factory=dict)
    windows: dict[str, UsageWindow] = field(default_factory=dict)
    roles_removed: set[str] = field(default_factory=set)
    azure_calls: dict[str, collections.Counter[str]] = field(default_factory=dict)
    users: UserDirectory = field(default_factory=UserDirectory)  # on-behalf-of
    _start_clock: Callable[[], float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.token_lifetime = self.token_lifetime or self.settings.token_lifetime
        self.limits = dict(self.settings.deployment_limits)
        self._start_clock = self.clock

    def reset(self) -> None:
        """Counters, faults, lifetime, limits, roles and the clock back to start-up values.

        Issued tokens stay valid (those issued while the clock was ahead live that much longer).
        """
        self.faults = Faults()
        self.token_lifetime = self.settings.token_lifetime
        self.refresh_in = None
        self.token_requests = self.completions = self.model_listings = self.unauthorized = 0
        self.embeddings = self.responses = 0
        self.token_requests_by_client.clear()
        self.recent_headers.clear()
        self.limits = dict(self.settings.deployment_limits)
        self.windows.clear()
        self.roles_removed.clear()
        self.azure_calls.clear()
        self.users.reset()
        self.clock = self._start_clock

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time forward (tokens expire, rate-limit windows empty)."""
        base = self.clock
        self.clock = lambda: base() + seconds

    def remember(self, token: str, issued: IssuedToken) -> None:
        """Record an issued token (expired ones are dropped here, so the table stays small)."""
        now = self.clock()
        self.tokens = {key: value for key, value in self.tokens.items() if value.expires_at > now}
        self.tokens[token] = issued

    def is_static_key(self, presented: str) -> bool:
        """True for the configured static API key."""
        key = self.settings.static_api_key
        return bool(key) and secrets.compare_digest(presented.encode(), (key or "").encode())

    def token_for(self, presented: str) -> IssuedToken | None:
        """The unexpired, unrevoked token the emulator issued as ``presented``, if any."""
        issued = self.tokens.get(presented)
        return issued if issued is not None and issued.expires_at > self.clock() else None

    def accepts(self, token: str) -> bool:
        """True for an unexpired, unrevoked token the emulator issued (or the static key)."""
        return self.is_static_key(token) or self.token_for(token) is not None

    def serves(self, deployment: str) -> bool:
        """True for a served model, on the default resource or on a named one (``RES/MODEL``)."""
        return deployment.rpartition("/")[2] in self.settings.models

    def limits_for(self, model: str) -> DeploymentLimits:
        """The deployment's current quota."""
        return self.limits.get(model) or DeploymentLimits()

    def window_for(self, model: str) -> UsageWindow:
        """The deployment's rate-limit window."""
        window = self.windows.get(model)
        if window is None:
            window = self.windows[model] = UsageWindow()
        return window

    def count_call(self, model: str, outcome: str) -> None:
        """Count an Azure OpenAI call of ``model`` by how it ended (one of ``OUTCOMES``)."""
        self.azure_calls.setdefault(model, collections.Counter())[outcome] += 1

    def calls_by_deployment(self) -> dict[str, dict[str, int]]:
        """``azure_calls``: every served deployment (and any other name asked for), by outcome."""
        names = dict.fromkeys([*self.settings.models, *self.azure_calls])
        return {
            name: {o: self.azure_calls.get(name, collections.Counter())[o] for o in OUTCOMES}
            for name in names
        }

    def counters(self) -> dict[str, object]:
        """The counters as JSON-ready data."""
        return {
            "token_requests": self.token_requests,
            "token_requests_by_client": dict(self.token_requests_by_client),
            "completions": self.completions,
            "embeddings": self.embeddings,
            "responses": self.responses,
            "model_listings": self.model_listings,
            "unauthorized": self.unauthorized,
            "tokens_outstanding": len(self.tokens),
            "azure_calls": self.calls_by_deployment(),
        }
