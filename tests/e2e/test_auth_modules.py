"""End-to-end: each inbound auth module behind a real uvicorn app, against real servers.

A small FastAPI app uses the service's own ``authorized`` dependency and error handlers; a
local custom auth endpoint and a local JWKS server are real HTTP servers on loopback.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from llama_entra.app.deps import authorized
from llama_entra.app.errors import install_error_handlers
from llama_entra.auth import Principal, build_authenticator
from llama_entra.config import AuthenticationConfig
from support.auth import AUDIENCE, ISSUER, CustomEndpoint, KeySet, serve_custom_endpoint, serve_jwks
from support.emulator import EmulatorHandle
from support.servers import run_uvicorn

READER_RULES = [
    {"role": "admin", "actions": ["*"]},
    {"role": "reader", "actions": ["models"]},
]


def _app(config: dict[str, Any]) -> FastAPI:
    settings = AuthenticationConfig.model_validate(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        app.state.authenticator = build_authenticator(settings)
        yield
        await app.state.authenticator.aclose()

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)

    @app.get("/query")
    async def query(who: Annotated[Principal, Depends(authorized("query"))]) -> dict[str, Any]:
        return {"principal": who.name, "roles": sorted(who.roles)}

    @app.post("/query")
    async def post_query(
        who: Annotated[Principal, Depends(authorized("query"))],
    ) -> dict[str, str]:
        return {"principal": who.name}

    @app.get("/models")
    async def models(who: Annotated[Principal, Depends(authorized("models"))]) -> dict[str, str]:
        return {"principal": who.name}

    return app


def _get(
    url: str, path: str, credential: str | None = None, *, method: str = "GET", **headers: str
) -> httpx.Response:
    if credential:
        headers["Authorization"] = f"Bearer {credential}"
    return httpx.request(method, f"{url}{path}", headers=headers, timeout=10)


# -- api_key -----------------------------------------------------------------------------------


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text("# team keys\nalice:alice-key-1\n")
    return path


@pytest.fixture
def api_key_url(keys_file: Path) -> Iterator[str]:
    config = {
        "module": "api_key",
        "api_key": {"keys": {"ops": "ops-key"}, "keys_file": str(keys_file)},
        "rules": [{"role": "ops", "actions": ["*"]}, {"role": "alice", "actions": ["models"]}],
    }
    with run_uvicorn(_app(config)) as url:
        yield url


def test_api_key_valid_wrong_missing(api_key_url: str) -> None:
    assert _get(api_key_url, "/query", "ops-key").json()["principal"] == "ops"
    wrong = _get(api_key_url, "/query", "nope")
    assert wrong.status_code == 401
    assert wrong.json()["detail"]["cause"] == "invalid API key"
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert "nope" not in wrong.text
    missing = _get(api_key_url, "/query")
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.json()["detail"]["cause"]


def test_api_key_rules_allow_and_forbid(api_key_url: str) -> None:
    assert _get(api_key_url, "/models", "alice-key-1").status_code == 200
    denied = _get(api_key_url, "/query", "alice-key-1")
    assert denied.status_code == 403
    assert denied.json()["detail"]["cause"] == "alice may not perform 'query'"


def test_api_key_file_rotation_without_restart(api_key_url: str, keys_file: Path) -> None:
    assert _get(api_key_url, "/models", "alice-key-1").status_code == 200
    keys_file.write_text("alice:alice-key-2\n")
    # The file is checked at most once per second; poll with a deadline.
    end = time.monotonic() + 5
    while _get(api_key_url, "/models", "alice-key-1").status_code == 200:
        assert time.monotonic() < end, "rotation not picked up"
        time.sleep(0.2)
    assert _get(api_key_url, "/models", "alice-key-2").status_code == 200


# -- custom ------------------------------------------------------------------------------------


@pytest.fixture(params=[60, 0], ids=["cached", "uncached"])
def custom(request: pytest.FixtureRequest) -> Iterator[tuple[str, CustomEndpoint]]:
    endpoint = CustomEndpoint()
    with serve_custom_endpoint(endpoint) as endpoint_url:
        config = {
            "module": "custom",
            "custom": {
                "endpoint": endpoint_url,
                "timeout_seconds": 0.5,
                "cache_ttl_seconds": request.param,
                "cache_key_headers": ["X-Tenant"],
            },
            "rules": READER_RULES,
        }
        with run_uvicorn(_app(config)) as url:
            yield url, endpoint


def _cached(custom: tuple[str, CustomEndpoint]) -> bool:
    url, endpoint = custom
    before = len(endpoint.calls)
    _get(url, "/models", "good-admin")
    _get(url, "/models", "good-admin")
    return len(endpoint.calls) == before + 1


def test_custom_allow_deny_and_cache(custom: tuple[str, CustomEndpoint]) -> None:
    url, endpoint = custom
    allowed = _get(url, "/query?x=1", "good-admin")
    assert allowed.json() == {"principal": "user-good-admin", "roles": ["admin"]}
    assert _get(url, "/query?x=1", "good-admin").status_code == 200
    assert len(endpoint.calls) == (1 if _cached(custom) else 2)
    sent = endpoint.calls[0]["request"]
    assert sent["method"] == "GET"
    assert sent["path"] == "/query" and sent["params"] == {"x": "1"}
    assert "authorization" not in sent["headers"]
    denied = _get(url, "/query", "bad-key")
    assert denied.status_code == 401
    assert "bad-key" not in denied.text
    assert _get(url, "/query", "good-reader").status_code == 403


def test_custom_allow_for_one_path_never_covers_another(
    custom: tuple[str, CustomEndpoint],
) -> None:
    url, endpoint = custom
    for _ in range(2):  # the second round may come from the cache, and must agree
        assert _get(url, "/models", "good-models").status_code == 200
        assert _get(url, "/query", "good-models").status_code == 401
        assert _get(url, "/query", "good-models", method="POST").status_code == 401
        assert _get(url, "/models?page=2", "good-models").status_code == 200
    asked = [(c["request"]["method"], c["request"]["path"]) for c in endpoint.calls]
    # Denials are never cached; allows are, per method, path and query, when caching is on.
    assert asked.count(("GET", "/query")) == 2
    assert asked.count(("POST", "/query")) == 2
    assert asked.count(("GET", "/models")) == (2 if _cached(custom) else 4)


def test_custom_cache_key_includes_named_headers(custom: tuple[str, CustomEndpoint]) -> None:
    url, _ = custom
    assert _get(url, "/models", "good-tenant", **{"X-Tenant": "a"}).status_code == 200
    assert _get(url, "/models", "good-tenant", **{"X-Tenant": "b"}).status_code == 401
    assert _get(url, "/models", "good-tenant").status_code == 401


def test_custom_endpoint_no_store_is_never_cached(custom: tuple[str, CustomEndpoint]) -> None:
    url, endpoint = custom
    for _ in range(3):
        assert _get(url, "/models", "good-nostore").status_code == 200
    assert sum(c["api_key"] == "good-nostore" for c in endpoint.calls) == 3


def test_custom_slow_or_failing_endpoint_fails_closed(custom: tuple[str, CustomEndpoint]) -> None:
    url, _ = custom
    slow = _get(url, "/query", "slow")
    assert slow.status_code == 503
    assert "did not answer in time" in slow.json()["detail"]["cause"]
    assert _get(url, "/query", "boom").status_code == 503


def test_custom_endpoint_down_fails_closed() -> None:
    config = {"module": "custom", "custom": {"endpoint": "http://127.0.0.1:9/auth"}}
    with run_uvicorn(_app(config)) as url:
        response = _get(url, "/query", "good-admin")
    assert response.status_code == 503
    assert response.json()["detail"]["cause"] == "the authentication endpoint is unreachable"


# -- jwk ---------------------------------------------------------------------------------------


@pytest.fixture
def jwk() -> Iterator[tuple[str, KeySet]]:
    key_set = KeySet()
    key_set.add("k1")
    with serve_jwks(key_set) as jwks_url:
        config = {
            "module": "jwk",
            "jwk": {
                "jwks_url": jwks_url,
                "issuer": ISSUER,
                "audience": [AUDIENCE],
                "unknown_kid_refetch_seconds": 0,
            },
            "rules": READER_RULES,
        }
        with run_uvicorn(_app(config)) as url:
            yield url, key_set


def test_jwk_valid_token_maps_claims(jwk: tuple[str, KeySet]) -> None:
    url, keys = jwk
    token = keys.token(sub="alice", roles=["admin"])
    assert _get(url, "/query", token).json() == {"principal": "alice", "roles": ["admin"]}
    assert _get(url, "/query", keys.token(roles=["reader"])).status_code == 403


@pytest.mark.parametrize(
    ("claims", "cause"),
    [
        ({"lifetime": -120}, "the token has expired"),
        ({"aud": "api://someone-else"}, "the token is for another audience"),
        ({"iss": "https://evil.test/"}, "the token is from another issuer"),
        ({"nbf": int(time.time()) + 600}, "the token is not valid yet (nbf or iat in the future)"),
        ({"iat": int(time.time()) + 600}, "the token is not valid yet (nbf or iat in the future)"),
        ({"exp": None}, "the token has no 'exp' claim"),
        ({"aud": None}, "the token has no 'aud' claim"),
        ({"iss": None}, "the token has no 'iss' claim"),
    ],
)
def test_jwk_rejects_bad_claims(
    jwk: tuple[str, KeySet], claims: dict[str, Any], cause: str
) -> None:
    url, keys = jwk
    response = _get(url, "/query", keys.token(**claims))
    assert response.status_code == 401
    assert response.json()["detail"]["cause"] == cause


def test_jwk_leeway_admits_small_clock_skew(jwk: tuple[str, KeySet]) -> None:
    url, keys = jwk
    skewed = keys.token(roles=["admin"], nbf=int(time.time()) + 30, iat=int(time.time()) + 30)
    assert _get(url, "/query", skewed).status_code == 200


def test_jwk_opt_out_accepts_any_audience_and_issuer() -> None:
    keys = KeySet()
    keys.add("k1")
    with serve_jwks(keys) as jwks_url:
        config = {
            "module": "jwk",
            "jwk": {"jwks_url": jwks_url, "allow_any_audience_and_issuer": True},
        }
        with run_uvicorn(_app(config)) as url:
            other = keys.token(aud="api://another-app", iss="https://elsewhere.test/")
            assert _get(url, "/query", other).status_code == 200
            assert _get(url, "/query", keys.token(lifetime=-120)).status_code == 401


def test_jwk_rejects_alg_none(jwk: tuple[str, KeySet]) -> None:
    url, _ = jwk
    unsigned = jwt_encode_none({"sub": "mallory", "aud": AUDIENCE, "iss": ISSUER, "exp": 2**31})
    response = _get(url, "/query", unsigned)
    assert response.status_code == 401
    assert "'none' is not accepted" in response.json()["detail"]["cause"]


def test_jwk_unknown_kid_then_rotated_key(jwk: tuple[str, KeySet]) -> None:
    url, keys = jwk
    assert _get(url, "/query", keys.token(roles=["admin"])).status_code == 200
    keys.add("k2", publish=False)
    fetches = keys.fetches
    unknown = _get(url, "/query", keys.token("k2", roles=["admin"]))
    assert keys.fetches == fetches + 1  # looked again before refusing
    assert unknown.status_code == 401
    assert unknown.json()["detail"]["cause"] == "the token was signed with an unknown key"


def test_jwk_rotated_key_is_fetched_on_unknown_kid(jwk: tuple[str, KeySet]) -> None:
    url, keys = jwk
    keys.add("k2")  # published before any fetch of it is needed
    assert _get(url, "/query", keys.token(roles=["admin"])).status_code == 200
    fetches = keys.fetches
    keys.add("k3")  # rotation: a new key appears after the cache was filled
    response = _get(url, "/query", keys.token("k3", roles=["admin"]))
    assert response.status_code == 200
    assert keys.fetches == fetches + 1


def test_jwk_accepts_entra_tokens_from_the_emulator(emulator: EmulatorHandle) -> None:
    token = httpx.post(
        f"{emulator.url}/{emulator.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
            "scope": "api://llama-entra/.default",
        },
        verify=str(emulator.ca_path),
    ).json()["access_token"]
    config = {
        "module": "jwk",
        "jwk": {
            "jwks_url": f"{emulator.url}/{emulator.tenant_id}/discovery/v2.0/keys",
            "issuer": f"https://sts.windows.net/{emulator.tenant_id}/",
            "audience": ["api://llama-entra"],
            "principal_claim": "appid",
            "ca_bundle": str(emulator.ca_path),
        },
    }
    with run_uvicorn(_app(config)) as url:
        response = _get(url, "/query", token)
    assert response.status_code == 200
    assert response.json()["principal"] == emulator.client_id


def test_no_credential_in_logs(
    api_key_url: str, jwk: tuple[str, KeySet], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, keys = jwk
    token = keys.token(roles=["admin"])
    _get(url, "/query", token)
    _get(api_key_url, "/query", "ops-key")
    _get(api_key_url, "/query", "wrong-key-xyz")
    for secret in (token, "ops-key", "wrong-key-xyz", "alice-key-1"):
        assert secret not in caplog.text


def jwt_encode_none(claims: dict[str, Any]) -> str:
    """An unsigned token (``alg: none``), as an attacker would send."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
