"""Shared pytest set-up: fixture plugins live in tests/support/, one module per part."""

pytest_plugins: list[str] = ["support.emulator"]
