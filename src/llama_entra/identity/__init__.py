"""Per-user Azure identity: Entra's on-behalf-of flow, so Azure OpenAI sees the signed-in user.

``create_user_tokens(config)`` gives ``UserTokens`` when ``azure_entra_id.user_identity`` is
``on_behalf_of``; the inbound authentication binds each request's ``UserCaller``
(``bind_caller``), and whoever builds an Azure call asks ``UserTokens.token()`` for the user's
token (exchanged once per user, cached per tenant and object id, see ``identity.cache``).
"""

from llama_entra.identity.cache import EXCHANGE_OUTCOMES, Exchange, UserTokenCache
from llama_entra.identity.caller import UserCaller, bind_caller, caller_from_claims, current_caller
from llama_entra.identity.errors import (
    AppCallerRefusedError,
    ConsentRequiredError,
    SignInAgainError,
    UserPermissionError,
    translate_exchange_error,
)
from llama_entra.identity.exchange import OnBehalfOfExchange
from llama_entra.identity.metrics import register_user_token_metrics
from llama_entra.identity.tokens import UserTokens, create_user_tokens

__all__ = [
    "EXCHANGE_OUTCOMES",
    "AppCallerRefusedError",
    "ConsentRequiredError",
    "Exchange",
    "OnBehalfOfExchange",
    "SignInAgainError",
    "UserCaller",
    "UserPermissionError",
    "UserTokenCache",
    "UserTokens",
    "bind_caller",
    "caller_from_claims",
    "create_user_tokens",
    "current_caller",
    "register_user_token_metrics",
    "translate_exchange_error",
]
