"""What the emulator knows: registered clients, issued tokens, counters and injected faults.

One ``EmulatorState`` per running emulator, shared by its Entra, Azure OpenAI and control
routes. Everything runs on one event loop, so plain attributes need no locks.
"""

from __future__ import annotations

import collections
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["EmulatorSettings", "EmulatorState", "Faults", "IssuedToken"]

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


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token the emulator issued: whom for and until when."""

    client_id: str
    expires_at: float


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

    def __post_init__(self) -> None:
        self.token_lifetime = self.token_lifetime or self.settings.token_lifetime

    def reset(self) -> None:
        """Counters, faults and token lifetime back to start-up values; tokens stay valid."""
        self.faults = Faults()
        self.token_lifetime = self.settings.token_lifetime
        self.refresh_in = None
        self.token_requests = self.completions = self.model_listings = self.unauthorized = 0
        self.embeddings = self.responses = 0
        self.token_requests_by_client.clear()
        self.recent_headers.clear()

    def remember(self, token: str, client_id: str, lifetime: int) -> None:
        """Record an issued token (expired ones are dropped here, so the table stays small)."""
        now = self.clock()
        self.tokens = {key: value for key, value in self.tokens.items() if value.expires_at > now}
        self.tokens[token] = IssuedToken(client_id, now + lifetime)

    def accepts(self, token: str) -> bool:
        """True for an unexpired, unrevoked token the emulator issued (or the static key)."""
        if self.settings.static_api_key and secrets.compare_digest(
            token, self.settings.static_api_key
        ):
            return True
        issued = self.tokens.get(token)
        return issued is not None and issued.expires_at > self.clock()

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
        }
