"""Request and response bodies of the REST API, one module per family of routes.

``query`` and ``conversations`` follow lightspeed-stack's published contract (field names,
validation messages); ``openai`` holds the OpenAI-compatible bodies and the error bodies.
"""

from llama_entra.app.schemas.conversations import (
    ConversationData,
    ConversationDeleteResponse,
    ConversationDetails,
    ConversationResponse,
    ConversationsListResponse,
    ConversationsListResponseV2,
    ConversationTurn,
    ConversationUpdateRequest,
    ConversationUpdateResponse,
)
from llama_entra.app.schemas.openai import (
    BothErrorResponse,
    ChatCompletionRequest,
    ErrorDetail,
    ErrorResponse,
    OpenAIError,
    OpenAIErrorResponse,
    ResponsesRequest,
)
from llama_entra.app.schemas.query import (
    Attachment,
    QueryRequest,
    QueryResponse,
    ReferencedDocument,
)

__all__ = [
    "Attachment",
    "BothErrorResponse",
    "ChatCompletionRequest",
    "ConversationData",
    "ConversationDeleteResponse",
    "ConversationDetails",
    "ConversationResponse",
    "ConversationTurn",
    "ConversationUpdateRequest",
    "ConversationUpdateResponse",
    "ConversationsListResponse",
    "ConversationsListResponseV2",
    "ErrorDetail",
    "ErrorResponse",
    "OpenAIError",
    "OpenAIErrorResponse",
    "QueryRequest",
    "QueryResponse",
    "ReferencedDocument",
    "ResponsesRequest",
]
