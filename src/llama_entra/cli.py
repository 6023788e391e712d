"""The ``llama-entra`` command: one sub-command per part of the project.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; those modules keep heavy imports inside ``run`` so ``--help`` is fast.
A ``LlamaEntraError`` becomes one line on stderr and exit code 2 (config) or 1 (anything
else): never a traceback for a user mistake.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from llama_entra.errors import ConfigError, LlamaEntraError

__all__ = ["main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("llama_entra.app.cli", "run the REST service (uvicorn)"),
    "enrich": (
        "llama_entra.enrich",
        "write a run config whose Azure providers start without a key",
    ),
    "proxy": ("llama_entra.proxy.cli", "run the Entra-authenticating sidecar proxy"),
    "emulator": ("llama_entra.emulator.cli", "run the local Entra ID + Azure OpenAI emulator"),
}


class CommandModule(Protocol):
    """What a sub-command module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the ``selected`` command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="llama-entra",
        description="Llama Stack on Azure OpenAI with lazy Microsoft Entra ID authentication.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, summary) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        if name == selected:
            module = cast(CommandModule, importlib.import_module(module_name))
            module.add_arguments(sub)
            sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    selected = next((arg for arg in arguments if not arg.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args = parser.parse_args(arguments)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"llama-entra {args.command}: {exc}", file=sys.stderr)
        return 2
    except LlamaEntraError as exc:
        print(f"llama-entra {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
