"""Conversations: the store callers see, its indexes, the history cache and their ids.

- ``store``: ``ConversationStore``, lightspeed-stack's conversations on Llama Stack's own
  conversations API, each owned by one caller.
- ``index`` / ``index_postgres``: the conversation index (SQLite on one pod, PostgreSQL across
  replicas) that lists a caller's conversations without asking Llama Stack.
- ``history_cache``: the recent history of busy conversations, kept to save a Llama Stack read.
"""

from llama_entra.conversations.store import OWNER_KEY, ConversationStore, iso

__all__ = ["OWNER_KEY", "ConversationStore", "iso"]
