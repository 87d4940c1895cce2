"""The one place a uvicorn server is built for the gateway app, so `gatewise serve` and the test
suite run exactly the same HTTP settings (protocol, limits, timeouts, shutdown)."""

from __future__ import annotations

from typing import Literal

import uvicorn

from gatewise.server.app import GatewayApp

LoopName = Literal["auto", "asyncio", "uvloop"]


def best_loop() -> LoopName:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def build_server(app: GatewayApp, *, host: str, port: int, log_level: str = "info",
                 loop: LoopName | None = None) -> uvicorn.Server:
    """uvicorn with httptools, no access log (the gateway records its own metrics), no server
    or date header."""
    config = uvicorn.Config(app, host=host, port=port, loop=loop or best_loop(), http="httptools",
                            lifespan="on", access_log=False, log_level=log_level,
                            server_header=False, date_header=False, timeout_keep_alive=75)
    return uvicorn.Server(config)
