"""Storage helpers every stateful part uses.

- ``database``: the PostgreSQL database behind Llama Stack's stores (find it in a run config,
  ping it, serialise replicas' start-up with an advisory lock, recognise a lost database).
- ``sqlite_runner``: short SQLite work on the event loop when it need not wait, else in a
  worker thread.
"""
