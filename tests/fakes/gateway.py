"""Runs the real gatewise ASGI app under uvicorn on 127.0.0.1 in a background thread, so tests
talk to it over HTTP exactly as the official `openai` SDK does in production."""

from __future__ import annotations

import threading
import time
from typing import Any

from gatewise.config.loader import parse_config, resolve_config
from gatewise.gateway import Gateway
from gatewise.server.app import GatewayApp, create_app
from gatewise.server.serving import build_server
from tests.fakes.ports import free_port


class GatewayServer:
    """Serves a config (plain data, resolved with `env`) or a ready `Gateway`.

    Background provider health probes (a model list every 30 s) are off unless the config has
    a `health` section: the fakes record every request and many tests count them."""

    def __init__(self, config: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 warmup: bool = False, *, gateway: Gateway | None = None) -> None:
        if gateway is not None:
            self.app: GatewayApp = create_app(gateway=gateway, warmup=warmup)
        else:
            if config is not None and "health" not in config and "model_list" not in config:
                config = {**config, "health": {"probe_providers": False}}
            cfg, warnings = parse_config(config)
            self.app = create_app(resolve_config(cfg, None, env or {}, warnings), warmup=warmup)
        self.port = free_port()
        self._server = build_server(self.app, host="127.0.0.1", port=self.port,
                                    log_level="warning", loop="asyncio")
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
