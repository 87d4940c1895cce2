"""Runs an aiohttp web app on 127.0.0.1 in a background thread, for fakes used by sync and async
tests alike (the official `openai` SDK's sync client included). Every request is recorded so
tests can assert on exactly what gatewise sent upstream."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.ports import free_port


@dataclass
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class FakeServer:
    """Start with `with FakeServer(app_factory) as srv:`; `srv.url` is its base URL."""

    make_app: Callable[[FakeServer], web.Application]
    requests: list[SeenRequest] = field(default_factory=list)
    # What fakes observed that is not a request (e.g. "stream-aborted" when a client left).
    notes: list[str] = field(default_factory=list)
    port: int = 0
    # Serve HTTPS with this `ssl.SSLContext` (proxy/TLS tests); None serves plain HTTP.
    ssl_context: Any = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self.port = free_port()
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)

            async def start() -> None:
                app = self.make_app(self)
                app.middlewares.append(self._record)
                self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
                await self._runner.setup()
                site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True,
                                   ssl_context=self.ssl_context)
                await site.start()
                ready.set()

            self._loop.run_until_complete(start())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name=f"fake-{self.port}")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            SeenRequest(request.method, request.path, dict(request.query),
                        dict(request.headers), body)
        )
        return await handler(request)

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is None:
            return

        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        fut = asyncio.run_coroutine_threadsafe(stop(), loop)
        try:
            fut.result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            loop.close()
