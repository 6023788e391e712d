"""What ``TokenManager.status()`` reports: for ``/v1/info``, readiness and metrics.

Safe to show: it never holds the token or a secret, only times, counts and the last cause.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TokenStatus"]


class TokenStatus(BaseModel):
    """A snapshot of one identity's token: whether there is one, how long it lasts, what failed."""

    model_config = ConfigDict(frozen=True)

    has_token: bool = Field(description="A token is held and has not expired.")
    expires_in_seconds: float | None = Field(
        description="Seconds until the held token expires; null without a valid token."
    )
    last_refresh: datetime | None = Field(
        description="When the held token was fetched (UTC); null before the first success."
    )
    last_error: str | None = Field(
        description="Cause of the latest failed fetch; cleared by the next successful one."
    )
    token_requests: int = Field(description="Token requests made to Entra ID so far.")
