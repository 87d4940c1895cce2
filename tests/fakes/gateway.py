"""Runs the real gatewise ASGI app under uvicorn on 127.0.0.1 in a background thread, so tests
talk to it over HTTP exactly as the official `openai` SDK does in production."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from gatewise.config.loader import parse_config, resolve_config
from gatewise.server.app import GatewayApp, create_app


class GatewayServer:
    def __init__(self, config: dict[str, Any], env: dict[str, str] | None = None,
                 warmup: bool = False) -> None:
        cfg, warnings = parse_config(config)
        self.app: GatewayApp = create_app(resolve_config(cfg, None, env or {}, warnings),
                                          warmup=warmup)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, lifespan="on", access_log=False,
            log_level="warning", loop="asyncio", http="httptools"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GatewayServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(15)
