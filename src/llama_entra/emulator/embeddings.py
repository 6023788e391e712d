"""The emulator's ``POST /openai/v1/embeddings``: deterministic vectors, the same auth as chat.

A vector is a bag of hashed words: each lower-cased word adds +-1 at a position derived from its
SHA-256, and the sum is scaled to unit length. So equal texts get equal vectors, and texts that
share words have a higher cosine similarity than texts that do not: vector search over emulated
embeddings finds the document that mentions the query's words, offline and without a model.
Answers ``encoding_format`` ``float`` or ``base64`` (little-endian float32, the OpenAI SDK's
default), ``dimensions`` (else the emulator's ``--embedding-dimension``), and 404 for a model
that is not an embedding deployment, as Azure does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llama_entra.emulator.azure_openai import (
    authorized,
    emulator_state,
    error_response,
    json_response,
)
from llama_entra.emulator.gate import deployment_not_found

__all__ = ["embed", "embedding_routes"]

_WORD = re.compile(r"\w+")
_MAX_DIMENSION = 8192


def embed(text: str, dimension: int) -> list[float]:
    """The unit vector of ``text`` (see the module docstring); all zeros but one for no words."""
    vector = [0.0] * dimension
    words = _WORD.findall(text.lower()) or [""]
    for word in words:
        digest = hashlib.sha256(word.encode()).digest()
        position = int.from_bytes(digest[:4], "little") % dimension
        vector[position] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def _inputs(raw: object) -> list[str] | None:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        return list(raw)
    return None


def _encoded(vector: list[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


async def embeddings(request: Request) -> Response:
    """``POST /openai/v1/embeddings``."""
    if (denied := authorized(request)) is not None:
        return denied
    state = emulator_state(request)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "invalid_request_error", "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return error_response(400, "invalid_request_error", "The request body must be an object.")
    model = body.get("model")
    if model not in state.settings.embedding_models:
        return deployment_not_found()
    texts = _inputs(body.get("input"))
    if texts is None:
        return error_response(
            400, "invalid_request_error", "'input' must be a string or a non-empty string array."
        )
    dimension = body.get("dimensions") or state.settings.embedding_dimension
    if not isinstance(dimension, int) or not 1 <= dimension <= _MAX_DIMENSION:
        return error_response(400, "invalid_request_error", "'dimensions' is out of range.")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        return error_response(400, "invalid_request_error", "Unsupported encoding_format.")
    state.embeddings += 1
    tokens = sum(len(_WORD.findall(text)) or 1 for text in texts)
    data = [
        {"object": "embedding", "index": i, "embedding": _encoded(embed(text, dimension), encoding)}
        for i, text in enumerate(texts)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return json_response(request, {"object": "list", "data": data, "model": model, "usage": usage})


def embedding_routes() -> list[Route]:
    """The embeddings route of the v1 API."""
    return [Route("/openai/v1/embeddings", embeddings, methods=["POST"])]
