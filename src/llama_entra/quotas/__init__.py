"""Token quotas per caller and for the whole service, as lightspeed-stack's limiters count them.

- ``periods``: periods aligned to the clock (every replica agrees when one turns)
- ``limits``: a configured limiter and how its count moves between periods
- ``store``, ``store_postgres``: the counts in the conversation index's database, atomically
- ``limiter``: ``QuotaLimiter``, the check before a model call and the spending after it
"""

from llama_entra.conversations.index import SqliteConversationIndex
from llama_entra.conversations.index_postgres import PostgresConversationIndex
from llama_entra.quotas.limiter import QuotaLimiter
from llama_entra.quotas.limits import Count, Limiter
from llama_entra.quotas.periods import Period
from llama_entra.quotas.store import QuotaStore, SqliteQuotaStore
from llama_entra.quotas.store_postgres import PostgresQuotaStore

__all__ = [
    "Count",
    "Limiter",
    "Period",
    "PostgresQuotaStore",
    "QuotaLimiter",
    "QuotaStore",
    "SqliteQuotaStore",
    "quota_store",
]


def quota_store(index: object) -> QuotaStore | None:
    """The store that keeps counts in ``index``'s database (None for an unknown kind)."""
    if isinstance(index, SqliteConversationIndex):
        return SqliteQuotaStore(index)
    if isinstance(index, PostgresConversationIndex):
        return PostgresQuotaStore(index)
    return None
