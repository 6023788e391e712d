"""Unit tests of llama_entra.identity: callers from claims, the app-caller policy, errors."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.credentials import AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from pydantic import SecretStr

from llama_entra.config import AzureEntraIdConfig
from llama_entra.errors import TokenError, TokenUnavailableError, UnauthenticatedError
from llama_entra.identity import (
    AppCallerRefusedError,
    ConsentRequiredError,
    SignInAgainError,
    UserCaller,
    UserTokens,
    bind_caller,
    caller_from_claims,
    current_caller,
    translate_exchange_error,
)

SCOPE = "https://cognitiveservices.azure.com/.default"


def config(**changes: object) -> AzureEntraIdConfig:
    return AzureEntraIdConfig.model_validate(
        {
            "tenant_id": "t",
            "client_id": "c",
            "client_secret": "s",
            "user_identity": "on_behalf_of",
            **changes,
        }
    )


async def exchange(caller: UserCaller) -> AccessTokenInfo:
    return AccessTokenInfo(f"azure-{caller.object_id}", 2**40)


def test_caller_from_claims_user_and_app_tokens() -> None:
    alice = caller_from_claims({"tid": "t", "oid": "a", "scp": "access"}, "jwt")
    assert (alice.key, alice.app_only) == (("t", "a"), False)
    assert alice.assertion.get_secret_value() == "jwt"
    assert caller_from_claims({"tid": "t", "oid": "x", "idtyp": "app"}, "jwt").app_only
    assert caller_from_claims({"tid": "t", "oid": "x"}, "jwt").app_only  # no scp


def test_caller_from_claims_without_ids_is_unauthenticated() -> None:
    with pytest.raises(UnauthenticatedError, match="oid"):
        caller_from_claims({"tid": "t", "scp": "access"}, "jwt")


def test_user_caller_repr_hides_the_assertion() -> None:
    caller = UserCaller("t", "a", SecretStr("secret-jwt"), app_only=False)
    assert "secret-jwt" not in repr(caller)


async def test_user_tokens_user_caller_gets_own_token_bound_per_task() -> None:
    tokens = UserTokens(config(), exchange)

    async def as_user(name: str) -> str | None:
        bind_caller(UserCaller("t", name, SecretStr(f"jwt-{name}"), app_only=False))
        await asyncio.sleep(0)
        token = await tokens.token()
        assert current_caller() is not None
        return token.get_secret_value() if token else None

    assert await asyncio.gather(as_user("a"), as_user("b")) == ["azure-a", "azure-b"]


async def test_user_tokens_app_callers_refused_or_served_by_the_service() -> None:
    app = UserCaller("t", "app", SecretStr("jwt"), app_only=True)
    with pytest.raises(AppCallerRefusedError, match="no signed-in user"):
        await UserTokens(config(), exchange).token(app)
    with pytest.raises(AppCallerRefusedError):
        await UserTokens(config(), exchange).token(None)  # nothing bound
    assert await UserTokens(config(app_callers="service"), exchange).token(app) is None


def test_on_behalf_of_needs_an_app_credential() -> None:
    with pytest.raises(ValueError, match="on_behalf_of needs the app's own client credential"):
        config(credential="managed_identity")


def _entra_error(code: int, text: str) -> ClientAuthenticationError:
    return ClientAuthenticationError(
        message=f"Microsoft Entra ID error '(invalid_grant) AADSTS{code}: {text}"
    )


@pytest.mark.parametrize(
    ("code", "kind", "phrase"),
    [
        (500133, SignInAgainError, "sign in again"),
        (500131, SignInAgainError, "not for this application"),
        (65001, ConsentRequiredError, "user_impersonation"),
        (7000114, AppCallerRefusedError, "no signed-in user"),
    ],
)
def test_translate_exchange_error_names_the_fix(code: int, kind: type, phrase: str) -> None:
    error = translate_exchange_error(
        _entra_error(code, "Some text."), scope=SCOPE, timeout_seconds=5
    )
    assert isinstance(error, kind)
    assert phrase in str(error)


def test_translate_exchange_error_other_user_refusals_ask_to_sign_in_again() -> None:
    refusal = ClientAuthenticationError(
        message="Microsoft Entra ID error '(interaction_required) AADSTS50076: Due to a "
        "configuration change made by your administrator, you must use multi-factor "
        "authentication. Trace ID: x'"
    )
    error = translate_exchange_error(refusal, scope=SCOPE, timeout_seconds=5)
    assert isinstance(error, SignInAgainError)
    assert "AADSTS50076" in str(error)
    assert "multi-factor" in str(error)
    wrong_secret = ClientAuthenticationError(
        message="Microsoft Entra ID error '(invalid_client) AADSTS7000215: Invalid client secret."
    )
    app_problem = translate_exchange_error(wrong_secret, scope=SCOPE, timeout_seconds=5)
    assert isinstance(app_problem, TokenError)


def test_translate_exchange_error_entra_down_is_unavailable() -> None:
    error = translate_exchange_error(
        ServiceRequestError("connection refused"), scope=SCOPE, timeout_seconds=5
    )
    assert isinstance(error, TokenUnavailableError)
    timed_out = translate_exchange_error(TimeoutError(), scope=SCOPE, timeout_seconds=5)
    assert isinstance(timed_out, TokenUnavailableError)


def test_user_tokens_warn_about_a_provider_that_gets_its_own_tokens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tokens = UserTokens(config(), exchange)
    tokens.saw_provider("azure", "remote::azure-openai-something")
    assert not caplog.records
    tokens.saw_provider("entra", "remote::azure-entra")
    assert "not as the calling user" in caplog.text
