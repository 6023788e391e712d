"""Whose token a call sends: the signed-in user's (on-behalf-of) or the service's.

``UserTokens`` is what the client holder and the proxy ask when ``azure_entra_id.user_identity``
is ``on_behalf_of``: for a user caller (bound by the inbound authentication, see
``identity.caller``) the user's token from the per-user cache; for an app-only caller, or a
call no caller is bound to, the service identity when ``app_callers: service``, else
``AppCallerRefusedError`` (403).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from pydantic import SecretStr

from llama_entra.config import AzureEntraIdConfig
from llama_entra.identity.cache import Exchange, UserTokenCache
from llama_entra.identity.caller import UserCaller, current_caller
from llama_entra.identity.errors import AppCallerRefusedError
from llama_entra.identity.exchange import OnBehalfOfExchange

__all__ = ["UserTokens", "create_user_tokens"]

logger = logging.getLogger(__name__)
_SELF_AUTHENTICATING_PROVIDER = "remote::azure-entra"  # gets its own tokens inside Llama Stack


class UserTokens:
    """Per-user tokens and the policy for callers without a user; module docstring."""

    def __init__(
        self,
        config: AzureEntraIdConfig,
        exchange: Exchange,
        *,
        clock: Callable[[], float] = time.time,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.app_callers = config.app_callers
        self._close = close
        self.cache = UserTokenCache(
            exchange,
            size=config.user_cache_size,
            concurrency=config.user_exchange_concurrency,
            margin_seconds=config.refresh_margin_seconds,
            clock=clock,
        )

    def acting_for(self, caller: UserCaller | None = None) -> UserCaller | None:
        """The user a call acts for (``caller``, else the bound one); None: the service.

        Raises ``AppCallerRefusedError`` for an app-only (or unbound) caller with
        ``app_callers: refuse``.
        """
        caller = caller or current_caller()
        if caller is not None and not caller.app_only:
            return caller
        if self.app_callers == "service":
            return None
        raise AppCallerRefusedError()

    async def token(self, caller: UserCaller | None = None) -> SecretStr | None:
        """The user's Azure token for this call; None when the service identity serves it."""
        user = self.acting_for(caller)
        return None if user is None else await self.cache.token(user)

    async def aclose(self) -> None:
        """Release the exchange's HTTP session."""
        if self._close is not None:
            await self._close()

    def saw_provider(self, provider_id: str, provider_type: str) -> None:
        """Warn about a provider no user token can reach (it fetches its own tokens)."""
        if provider_type == _SELF_AUTHENTICATING_PROVIDER:
            logger.warning(
                "provider %s (%s) gets its own tokens: its models reach Azure as that "
                "identity, not as the calling user",
                provider_id,
                provider_type,
            )

    def drop(self, rejected: SecretStr | None, caller: UserCaller | None = None) -> bool:
        """Azure refused ``rejected``: forget it if it is a user's (True), else False."""
        user = caller or current_caller()
        if user is None or user.app_only:
            return False
        self.cache.drop(user, rejected)
        return True


def create_user_tokens(config: AzureEntraIdConfig | None) -> UserTokens | None:
    """``UserTokens`` for ``config`` when it asks for ``on_behalf_of``, else None."""
    if config is None or config.user_identity != "on_behalf_of":
        return None
    exchange = OnBehalfOfExchange(config)
    return UserTokens(config, exchange, close=exchange.aclose)
