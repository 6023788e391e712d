"""The FastAPI service: ``create_app(config)`` (see ``app.main``)."""

from llama_entra.app.main import create_app

__all__ = ["create_app"]
