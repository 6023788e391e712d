"""The emulated directory's users: their object ids, consent, and what they did.

Test users are named (``alice``); each has a stable object id derived from tenant and name,
like the service principals of ``roles``. Consent to the app's delegated permission is granted
for everyone (as after an admin's consent) until a test revokes it for a user.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from llama_entra.emulator.roles import object_id_for

__all__ = ["UserDirectory", "user_object_id"]


def user_object_id(tenant_id: str, name: str) -> str:
    """The object id of test user ``name`` in ``tenant_id``."""
    return object_id_for(tenant_id, f"user:{name}")


@dataclass
class UserDirectory:
    """Consent per user, on-behalf-of exchanges per user, Azure calls per token ``oid``."""

    consent_revoked: set[str] = field(default_factory=set)
    exchanges: collections.Counter[str] = field(default_factory=collections.Counter)
    azure_calls: collections.Counter[str] = field(default_factory=collections.Counter)

    def reset(self) -> None:
        """Everyone consents again; counters back to zero."""
        self.consent_revoked.clear()
        self.exchanges.clear()
        self.azure_calls.clear()

    def view(self) -> dict[str, object]:
        """JSON-ready: exchanges by user object id, Azure calls by token ``oid``, revocations."""
        return {
            "exchanges": sum(self.exchanges.values()),
            "exchanges_by_object_id": dict(self.exchanges),
            "azure_calls_by_object_id": dict(self.azure_calls),
            "consent_revoked": sorted(self.consent_revoked),
        }
