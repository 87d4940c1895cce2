"""Requests in flight at the ASGI level (`server/lifecycle.py`): a client that leaves cuts its
call, the shutdown drain refuses new calls and cuts the running ones after the grace period,
and a cancellation that is not the guard's own is never swallowed. The same rules through a
real server and `gatewise serve`: `tests/server/test_client_gone.py`, `tests/e2e/test_shutdown.py`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.server import lifecycle
from gatewise.server.app import GatewayApp, create_app
from tests.waiting import eventually

SLOW = {"model": "slow", "messages": [{"role": "user", "content": "take your time"}]}


@pytest.fixture
async def app() -> AsyncIterator[GatewayApp]:
    cfg, warnings = parse_config({
        "models": {"echo": [{"model": "fake/echo"}], "slow": [{"model": "fake/slow-5000"}],
                   "brief": [{"model": "fake/slow-30"}]},
        "server": {"warmup": False, "shutdown_grace_s": 0.1},
        "storage": {"database": "memory"}})
    application = create_app(resolve_config(cfg, None, {}, warnings))
    await application.gateway.start()
    yield application
    application.inflight.close()
    await application.gateway.aclose()


class Exchange:
    """One request through the app's ASGI callable; `leave()` disconnects the client."""

    def __init__(self, app: GatewayApp, method: str, path: str, body: Any = None) -> None:
        self.app = app
        self.scope = {"type": "http", "method": method, "path": path, "query_string": b"",
                      "headers": [(b"content-type", b"application/json")]}
        self._body = [b"" if body is None else json.dumps(body).encode()]
        self._gone = asyncio.Event()
        self.sent: list[dict[str, Any]] = []

    async def _receive(self) -> dict[str, Any]:
        if self._body:
            return {"type": "http.request", "body": self._body.pop(), "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def leave(self) -> None:
        self._gone.set()

    async def run(self) -> None:
        await self.app(self.scope, self._receive, self._send)

    @property
    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)

    @property
    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent
                                   if m["type"] == "http.response.body"))


async def _outcomes(app: GatewayApp) -> list[str]:
    ledger = app.gateway.accounting.ledger
    await ledger.flush()
    return [r.outcome for r in await ledger.store.query()]


async def _until_in_flight(app: GatewayApp, n: int) -> None:
    await eventually(lambda: len(app.inflight) == n, 1.0, what=f"{n} calls in flight")


async def test_while_draining_readyz_is_503_and_new_calls_are_refused(app: GatewayApp) -> None:
    ready = Exchange(app, "GET", "/readyz")
    await ready.run()
    assert ready.status == 200
    app.drain()
    ready = Exchange(app, "GET", "/readyz")
    await ready.run()
    assert ready.status == 503 and ready.json["status"] == "draining"
    for path, body in (("/v1/chat/completions", {**SLOW, "model": "echo"}),
                       ("/v1/embeddings", {"model": "echo", "input": "x"})):
        refused = Exchange(app, "POST", path, body)
        await refused.run()
        assert refused.status == 503
        assert refused.json["error"]["code"] == "server_shutting_down"
    alive = Exchange(app, "GET", "/healthz")  # liveness is not readiness: still 200
    await alive.run()
    assert alive.status == 200
    assert await _outcomes(app) == []  # refused at the door: never a gateway call


async def test_the_grace_period_ends_calls_still_running_with_a_503(app: GatewayApp) -> None:
    slow = Exchange(app, "POST", "/v1/chat/completions", SLOW)
    task = asyncio.create_task(slow.run())
    await _until_in_flight(app, 1)
    t0 = time.monotonic()
    app.drain()
    await asyncio.wait_for(task, 2)
    assert 0.1 <= time.monotonic() - t0 < 1.0  # the grace period, not the 5 s answer
    assert slow.status == 503 and slow.json["error"]["code"] == "server_shutting_down"
    assert await _outcomes(app) == ["cancelled"]
    assert len(app.inflight) == 0


async def test_a_call_that_ends_within_the_grace_period_is_not_cut(app: GatewayApp) -> None:
    brief = Exchange(app, "POST", "/v1/chat/completions", {**SLOW, "model": "brief"})
    task = asyncio.create_task(brief.run())
    await _until_in_flight(app, 1)
    app.drain()
    await asyncio.wait_for(task, 2)  # 30 ms of work within 100 ms of grace
    await asyncio.sleep(0.15)  # past the grace period: nothing left to cut
    assert brief.status == 200 and await _outcomes(app) == ["success"]


async def test_a_client_that_leaves_ends_its_call_quietly(app: GatewayApp) -> None:
    gone = Exchange(app, "POST", "/v1/chat/completions", SLOW)
    task = asyncio.create_task(gone.run())
    await _until_in_flight(app, 1)
    t0 = time.monotonic()
    gone.leave()
    await asyncio.wait_for(task, 2)
    assert time.monotonic() - t0 < 2 * lifecycle.SWEEP_S + 0.2  # watched from the 2nd sweep
    assert gone.sent == []  # nobody to answer
    assert await _outcomes(app) == ["cancelled"]


async def test_only_calls_that_outlast_a_sweep_get_a_disconnect_watcher(
        app: GatewayApp, monkeypatch: pytest.MonkeyPatch) -> None:
    # The cost rule: a proxied call that answers quickly pays for no watcher task at all.
    started: list[object] = []
    real = lifecycle._disconnected

    def counted(receive: Any) -> Any:
        started.append(receive)
        return real(receive)

    monkeypatch.setattr(lifecycle, "_disconnected", counted)
    for _ in range(20):
        quick = Exchange(app, "POST", "/v1/chat/completions", {**SLOW, "model": "echo"})
        await quick.run()
        assert quick.status == 200
    assert started == []
    slow = Exchange(app, "POST", "/v1/chat/completions", SLOW)
    task = asyncio.create_task(slow.run())
    await asyncio.sleep(3 * lifecycle.SWEEP_S)
    assert len(started) == 1
    slow.leave()
    await asyncio.wait_for(task, 2)


async def test_a_cancellation_that_is_not_the_guards_goes_through(app: GatewayApp) -> None:
    # e.g. uvicorn's own graceful-shutdown timeout: the guard must not swallow it.
    call = Exchange(app, "POST", "/v1/chat/completions", SLOW)
    task = asyncio.create_task(call.run())
    await _until_in_flight(app, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled() and len(app.inflight) == 0
    assert await _outcomes(app) == ["cancelled"]


async def test_a_finished_request_leaves_no_watcher_behind(app: GatewayApp) -> None:
    before = asyncio.all_tasks()
    done = Exchange(app, "POST", "/v1/chat/completions", {**SLOW, "model": "echo"})
    await done.run()
    await asyncio.sleep(0)
    assert done.status == 200
    assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()
    done.leave()  # a disconnect after the answer cuts nothing
    await asyncio.sleep(0.01)
    assert await _outcomes(app) == ["success"]
