"""A local Entra ID and Azure OpenAI emulator for development, end-to-end tests and benchmarks.

``create_emulator_app(settings)`` builds the ASGI app; ``llama-entra emulator`` serves it over
HTTPS with a private CA (see ``emulator.cli``).
"""

from llama_entra.emulator.app import create_emulator_app
from llama_entra.emulator.state import EmulatorSettings, EmulatorState

__all__ = ["EmulatorSettings", "EmulatorState", "create_emulator_app"]
