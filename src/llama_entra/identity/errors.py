"""What an on-behalf-of failure means for the caller, each naming its fix.

Entra's answers to the exchange become errors of the inbound-caller branch of the tree
(``llama_entra.errors``), so the service answers them as 401/403, not as its own outage:

=====================================  ==========  ==========================================
Entra (or Azure) says                  status      the fix the message names
=====================================  ==========  ==========================================
AADSTS500133 assertion expired         401         sign in again, send the new token
AADSTS500131 assertion audience wrong  401         request a token for this app's API scope
AADSTS65001 consent_required           403         consent to user_impersonation on Azure
                                                   Cognitive Services (user or admin)
AADSTS7000114 / app-only caller        403         call as a user (or app_callers: service)
other invalid_grant, interaction_req.  401         sign in again, completing any prompt
Azure PermissionDenied for the user    403         assign the role to the user or a group
Entra down, timed out, 5xx             503         as for the service's own token
=====================================  ==========  ==========================================
"""

from __future__ import annotations

import re

from azure.core.exceptions import ClientAuthenticationError

from llama_entra.entra import translate_error
from llama_entra.errors import ForbiddenError, LlamaEntraError, UnauthenticatedError

__all__ = [
    "AppCallerRefusedError",
    "ConsentRequiredError",
    "SignInAgainError",
    "UserPermissionError",
    "translate_exchange_error",
]

COGNITIVE_SERVICES = "Azure Cognitive Services (https://cognitiveservices.azure.com)"
_AADSTS = re.compile(r"AADSTS(\d+)")
_USER_ERROR = re.compile(r"Microsoft Entra ID error '\((invalid_grant|interaction_required)\)")


class SignInAgainError(UnauthenticatedError):
    """Entra will not exchange the caller's token: expired, or for another application."""


class ConsentRequiredError(ForbiddenError):
    """The user (or an admin for them) has not consented to the delegated permission."""


class AppCallerRefusedError(ForbiddenError):
    """An app-only token: there is no user to act for, and app callers are refused."""

    def __init__(self) -> None:
        super().__init__(
            "an application's own token (no signed-in user) cannot reach Azure OpenAI on a "
            "user's behalf: call with a user's token (or set azure_entra_id.app_callers: "
            "service to let app callers use the service identity)"
        )


class UserPermissionError(ForbiddenError):
    """Azure OpenAI's PermissionDenied for a user: the user has no role on the resource."""

    role = "Cognitive Services OpenAI User"

    def __init__(self, object_id: str) -> None:
        self.object_id = object_id
        super().__init__(
            f"Azure OpenAI denied user {object_id}: the user lacks the '{self.role}' role on "
            "the Azure OpenAI resource; assign it to the user or to a group of theirs"
        )


def translate_exchange_error(
    exc: BaseException, *, scope: str, timeout_seconds: float
) -> LlamaEntraError:
    """The error for a failed on-behalf-of exchange (module docstring's table)."""
    if isinstance(exc, ClientAuthenticationError):
        found = _AADSTS.search(str(exc.message or ""))
        code = found.group(1) if found else None
        if code == "500133":
            return SignInAgainError(
                "your sign-in has expired (AADSTS500133): sign in again and call with the new "
                "access token"
            )
        if code == "500131":
            return SignInAgainError(
                "the access token is not for this application (AADSTS500131): request a token "
                f"for this API's scope, not for {scope}"
            )
        if code == "65001":
            return ConsentRequiredError(
                "consent required (AADSTS65001): the user, or an admin for the organisation, "
                "has not consented to this application's delegated permission "
                f"'user_impersonation' on {COGNITIVE_SERVICES}"
            )
        if code == "7000114":
            return AppCallerRefusedError()
        if _USER_ERROR.search(str(exc.message or "")):
            # Another refusal about the user, e.g. conditional access or MFA wanting a prompt.
            cause = translate_error(exc, kind="on-behalf-of", timeout_seconds=timeout_seconds).cause
            return SignInAgainError(
                f"Entra will not act for this user ({cause}): sign in again, completing any "
                "prompt (multi-factor authentication, conditional access)"
            )
    return translate_error(exc, kind="on-behalf-of", timeout_seconds=timeout_seconds)
