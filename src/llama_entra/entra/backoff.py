"""How long the token manager waits after failed token requests before asking Entra again.

Two regimes (see ``TokenManager``): while a valid token is held, a failed background refresh
backs off exponentially up to ``maximum`` (nobody waits for it); without a valid token every
caller fails until the next attempt, so the wait is capped at ``without_token`` (about one
request per second to a failing Entra, and recovery within about a second once it answers).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry ``n`` (1-based): ``initial * 2**(n-1)``, plus jitter, capped.

    ``maximum`` caps the background refresh of a still-valid token; ``without_token`` caps the
    wait when callers have no valid token (they are failing until the next attempt).
    """

    initial: float = 1.0
    maximum: float = 30.0
    jitter: float = 0.25
    without_token: float = 1.0

    def delay(self, attempt: int, rand: float, *, token_held: bool = True) -> float:
        """Seconds to wait after the ``attempt``-th failure in a row; ``rand`` is in [0, 1)."""
        base = self.initial * 2.0 ** min(attempt - 1, 30)
        cap = self.maximum if token_held else min(self.maximum, self.without_token)
        return min(cap, base * (1 + self.jitter * rand))
