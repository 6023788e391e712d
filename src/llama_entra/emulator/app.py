"""The emulator's ASGI application: Entra ID, Azure OpenAI and test controls on one server."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llama_entra.emulator.azure_openai import azure_openai_routes
from llama_entra.emulator.controls import control_routes
from llama_entra.emulator.embeddings import embedding_routes
from llama_entra.emulator.entra import entra_routes
from llama_entra.emulator.responses import response_routes
from llama_entra.emulator.state import EmulatorSettings, EmulatorState
from llama_entra.emulator.users import user_routes

__all__ = ["create_emulator_app"]


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": {"code": "404", "message": f"Resource not found: {request.url.path}"}}, 404
    )


def create_emulator_app(settings: EmulatorSettings) -> Starlette:
    """Build the emulator for ``settings``; its state is on ``app.state.emulator``."""
    app = Starlette(
        routes=[
            *control_routes(),
            *user_routes(),  # before entra_routes: its token endpoint adds on-behalf-of
            *azure_openai_routes(),
            *embedding_routes(),
            *response_routes(),
            *entra_routes(),
        ],
        exception_handlers={404: _not_found},
    )
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    app.state.emulator = EmulatorState(settings=settings, signing_key=signing_key)
    return app
