"""Unit tests: authorization rules, the keys file format, the noop exposure warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from llama_entra.auth import Principal, Rules, build_authenticator, warn_if_exposed
from llama_entra.auth.api_key import parse_keys_file
from llama_entra.cli import main
from llama_entra.config import AuthenticationConfig, AuthorizationRule, parse_config
from llama_entra.errors import ConfigError, ForbiddenError


def test_rules_empty_allow_every_authenticated_caller() -> None:
    Rules([]).check(Principal("anyone"), "chat")


def test_rules_roles_wildcards_and_denial() -> None:
    rules = Rules(
        [
            AuthorizationRule(role="admin", actions=["*"]),
            AuthorizationRule(role="reader", actions=["models", "info"]),
            AuthorizationRule(role="*", actions=["info"]),
        ]
    )
    rules.check(Principal("root", frozenset({"admin"})), "responses")
    rules.check(Principal("bob", frozenset({"reader"})), "models")
    rules.check(Principal("eve"), "info")
    with pytest.raises(ForbiddenError, match="bob may not perform 'chat'"):
        rules.check(Principal("bob", frozenset({"reader"})), "chat")


def test_parse_keys_file_names_comments_and_bare_keys() -> None:
    digests = parse_keys_file("# comment\n\nalice: key-a\nbare-key\n")
    assert sorted(digests) == ["alice", "key-4"]
    assert all(len(d) == 32 for d in digests.values())


def test_module_without_its_section_is_rejected_at_load() -> None:
    with pytest.raises(ConfigError, match="authentication: module jwk needs a `jwk:` section"):
        parse_config({"authentication": {"module": "jwk"}})


def test_jwk_rejects_symmetric_and_none_algorithms() -> None:
    raw = {
        "module": "jwk",
        "jwk": {
            "jwks_url": "https://x/keys",
            "algorithms": ["none"],
            "issuer": "i",
            "audience": ["a"],
        },
    }
    with pytest.raises(ValueError, match="only asymmetric"):
        AuthenticationConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("jwk", "missing"),
    [
        ({}, "issuer and audience required"),
        ({"issuer": "https://login.test/t/v2.0"}, "audience required"),
        ({"audience": ["api://x"]}, "issuer required"),
        ({"issuer": "", "audience": ["api://x"]}, "issuer required"),
    ],
)
def test_jwk_without_issuer_or_audience_is_rejected_at_load(
    jwk: dict[str, object], missing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "llama-entra.yaml"
    document = {"authentication": {"module": "jwk", "jwk": {"jwks_url": "https://x/keys", **jwk}}}
    path.write_text(yaml.safe_dump(document))
    assert main(["serve", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{path}: authentication.jwk: {missing}" in err
    assert "allow_any_audience_and_issuer: true" in err


def test_jwk_opt_out_is_accepted_and_warned_loudly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    config = parse_config(
        {
            "authentication": {
                "module": "jwk",
                "jwk": {"jwks_url": "https://x/keys", "allow_any_audience_and_issuer": True},
            }
        }
    )
    authenticator = build_authenticator(config.authentication)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "does NOT check the token issuer or audience" in warnings[0].getMessage()
    assert authenticator.module == "jwk"


@pytest.mark.parametrize(
    ("host", "exposed"),
    [("127.0.0.1", False), ("::1", False), ("localhost", False), ("0.0.0.0", True)],
)
def test_noop_on_non_loopback_warns(
    host: str, exposed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    assert warn_if_exposed(AuthenticationConfig(), host) is exposed
    assert ("authentication is 'noop'" in caplog.text) is exposed
