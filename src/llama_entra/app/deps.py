"""FastAPI dependencies: the client holder, the conversation store, the topic summarizer, the
token quotas, and the caller's principal.

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool,
a thread hop per request for reading an attribute.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from llama_entra.auth import Action, Authenticator, Principal
from llama_entra.auth.bearer import bearer_credential
from llama_entra.conversations import ConversationStore
from llama_entra.conversations.topics import TopicSummarizer
from llama_entra.identity import bind_caller, caller_from_claims
from llama_entra.quotas import QuotaLimiter
from llama_entra.stack import ClientHolder

__all__ = ["ConversationsDep", "HolderDep", "QuotasDep", "SummariesDep", "authorized"]


async def get_holder(request: Request) -> ClientHolder:
    """The client holder the lifespan built."""
    holder: ClientHolder = request.app.state.holder
    return holder


async def get_conversations(request: Request) -> ConversationStore:
    """The conversation store the lifespan built."""
    store: ConversationStore = request.app.state.conversations
    return store


async def get_summaries(request: Request) -> TopicSummarizer:
    """The background topic summarizer the lifespan built."""
    summaries: TopicSummarizer = request.app.state.summaries
    return summaries


async def get_quotas(request: Request) -> QuotaLimiter:
    """The token quotas the lifespan built."""
    quotas: QuotaLimiter = request.app.state.quotas
    return quotas


def authorized(action: Action) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks it may perform ``action``.

    The principal's name goes to ``request.state.principal`` for the access log. With
    on-behalf-of, the caller (its ids and token) is bound for the request's Azure calls.
    """

    async def dependency(request: Request) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        principal = await authenticator.authenticate(request)
        request.state.principal = principal.name
        authenticator.authorize(principal, action)
        if getattr(request.app.state, "users", None) is not None:  # on-behalf-of
            bind_caller(caller_from_claims(principal.attributes, bearer_credential(request)))
        return principal

    return dependency


HolderDep = Annotated[ClientHolder, Depends(get_holder)]
ConversationsDep = Annotated[ConversationStore, Depends(get_conversations)]
SummariesDep = Annotated[TopicSummarizer, Depends(get_summaries)]
QuotasDep = Annotated[QuotaLimiter, Depends(get_quotas)]
