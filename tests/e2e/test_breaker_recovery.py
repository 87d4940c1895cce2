"""A 3 s upstream outage through the real server costs seconds, not the breaker's `open_s`.

The gateway (uvicorn, 127.0.0.1, default breaker and retry settings) serves three aliases from
one fake OpenAI host that answers 500 to every chat request for `OUTAGE_S`, then recovers:
`solo` has one deployment and no fallback (the reported case: ~27 s of `503 circuit_open` after
the upstream was back, with no `Retry-After`); `primary` falls back to `secondary`, so once
both breakers are open the chain ends in an `AllTargetsFailedError` of two open breakers.

A client per alias sends one request every `PACE_S` (bounded by `LIMIT_S`) and stops at its
first success after the upstream returned. Recovery must follow within `RECOVERY_S`: the
breaker's first open period is `min_open_s` (1 s), doubled per failed probe, so the worst case
for a 3 s outage is a 4 s period starting just before the return; a loaded machine adds
little to that, since the probe goes with the first request after the period ends. Every
503 must say when to come back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes import openai_fake
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

OUTAGE_S = 3.0
PACE_S = 0.1
RECOVERY_S = 5.0
LIMIT_S = OUTAGE_S + 12.0  # every client stops by itself by then


class Outage:
    """The fake OpenAI host, failing every chat request while `time.monotonic() < until`;
    `seen` has the time of every chat request it received."""

    def __init__(self) -> None:
        self.until = 0.0
        self.seen: list[float] = []

    def make_app(self, srv: FakeServer) -> web.Application:
        app = openai_fake.make_app(srv)

        @web.middleware
        async def switch(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path.endswith("/chat/completions"):
                now = time.monotonic()
                self.seen.append(now)
                if now < self.until:
                    return web.json_response(openai_fake.error_body(500, "down"), status=500)
            return await handler(request)  # type: ignore[no-any-return]

        app.middlewares.append(switch)
        return app


@dataclass
class Client:
    """What one steady client saw: (time, status, code, retry-after) per response, and the
    messages of the 503s."""

    alias: str
    seen: list[tuple[float, int, str | None, str | None]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    first_success: float | None = None


@pytest.fixture
def upstream() -> Iterator[tuple[Outage, FakeServer]]:
    outage = Outage()
    with FakeServer(outage.make_app) as srv:
        yield outage, srv


def _config(url: str) -> dict[str, Any]:
    def dep(dep_id: str) -> list[dict[str, Any]]:
        return [{"model": "openai/gpt-4o-mini", "api_base": url + "/v1", "api_key": "sk-test",
                 "id": dep_id}]

    # Breaker and retries as shipped: the defaults are what the defect was about.
    return {"models": {"solo": dep("solo"), "primary": dep("primary"),
                       "secondary": dep("secondary")},
            "router": {"fallbacks": {"primary": ["secondary"]}}}


async def _steady(session: aiohttp.ClientSession, url: str, client: Client, up_at: float,
                  stop_at: float) -> None:
    body = {"model": client.alias, "messages": [{"role": "user", "content": "hi"}]}
    next_at = time.monotonic()
    while time.monotonic() < stop_at:
        async with session.post(url + "/v1/chat/completions", json=body) as resp:
            payload = await resp.json(content_type=None)
            now = time.monotonic()
            code = payload["error"]["code"] if resp.status != 200 else None
            client.seen.append((now, resp.status, code, resp.headers.get("retry-after")))
            if resp.status == 503:
                client.refusals.append(payload["error"]["message"])
        if resp.status == 200 and now >= up_at:
            client.first_success = now
            return
        next_at += PACE_S
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def test_a_3s_outage_recovers_within_seconds_and_every_503_says_when_to_retry(
        upstream: tuple[Outage, FakeServer]) -> None:
    outage, srv = upstream
    with GatewayServer(_config(srv.url)) as gw:
        clients = [Client("solo"), Client("primary")]
        async with aiohttp.ClientSession() as session:
            for c in clients:  # warm: connections up, every alias served once
                c.seen.clear()
                await _steady(session, gw.url, c, 0.0, time.monotonic() + 5.0)
                assert c.first_success is not None
                c.seen.clear()
            start = time.monotonic()
            outage.until = up_at = start + OUTAGE_S
            await asyncio.gather(*(_steady(session, gw.url, c, up_at, start + LIMIT_S)
                                   for c in clients))

    during = sum(start <= t < up_at for t in outage.seen)
    for c in clients:
        assert c.first_success is not None, f"{c.alias}: no success within {LIMIT_S} s"
        recovery = c.first_success - up_at
        refused = [s for s in c.seen if s[1] == 503]
        print(f"{c.alias}: first success {recovery:.2f} s after the upstream returned; "
              f"{len(c.seen)} requests, {len(refused)} refused as circuit_open; "
              f"{during} upstream requests during the outage")
        assert recovery <= RECOVERY_S
        assert refused, f"{c.alias}: the breaker never opened"
        for t, status, code, retry_after in c.seen:
            assert status in (200, 502, 503), (c.alias, t - start, status, code)
            if status == 503:
                assert code == "circuit_open"
                assert retry_after is not None and retry_after.isdigit(), (c.alias, t - start)
                assert 1 <= int(retry_after) <= 30
    # Retry-After follows the breaker: after `solo`'s first probe failed (about 1.3 s into
    # the outage) its next period was ~2 s, and the refusals said so.
    assert max(int(ra) for *_, ra in clients[0].seen if ra is not None) >= 2
    # `primary`'s refusals were its whole fallback chain failing on open breakers.
    assert any(m.startswith("every target for 'primary' failed (primary: CircuitOpenError, "
                            "secondary: CircuitOpenError)") for m in clients[1].refusals)
    # The breakers kept the dead upstream from the clients' traffic (~60 requests, up to 3
    # attempts each): per deployment, the 5 failures that open it (plus retries already in
    # flight) and one probe per open period (at most 2 in 3 s), whatever the clients send.
    assert during <= 3 * (5 + 2 + 2)
