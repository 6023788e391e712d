"""Authorization: which roles may perform which actions.

No rules: every authenticated caller may do everything. With rules, a caller may perform an
action when one of its roles (or the wildcard role ``*``) has a rule listing that action (or
``*``).
"""

from __future__ import annotations

from collections.abc import Iterable

from llama_entra.auth.base import Action, Principal
from llama_entra.config import AuthorizationRule
from llama_entra.errors import ForbiddenError

__all__ = ["Rules"]


class Rules:
    """Role-to-action rules from ``authentication.rules``."""

    def __init__(self, rules: Iterable[AuthorizationRule]) -> None:
        self._allowed: dict[str, set[str]] = {}
        for rule in rules:
            self._allowed.setdefault(rule.role, set()).update(rule.actions)

    def check(self, principal: Principal, action: Action) -> None:
        """Return if allowed, else raise ``ForbiddenError`` naming the principal and action."""
        if not self._allowed:
            return
        for role in (*principal.roles, "*"):
            actions = self._allowed.get(role, set())
            if action in actions or "*" in actions:
                return
        raise ForbiddenError(f"{principal.name} may not perform '{action}'")
