"""Run an ASGI app under real uvicorn in a background thread, on a free loopback port."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

__all__ = ["run_uvicorn"]


@contextlib.contextmanager
def run_uvicorn(app: Any, *, deadline_seconds: float = 30.0) -> Iterator[str]:
    """Serve ``app`` until the block exits; yields its base URL once it accepts connections."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test-server")
    thread.start()
    try:
        deadline = time.monotonic() + deadline_seconds
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server stopped during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not started within {deadline_seconds} s")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
