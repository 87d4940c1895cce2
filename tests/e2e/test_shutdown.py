"""SIGTERM under load, on `gatewise serve` in a subprocess: shutdown takes
`server.shutdown_grace_s`, not as long as the longest stream.

In-flight streams keep flowing through the grace period, then end with a
`server_shutting_down` error event (the official SDK raises `APIError`, it does not hang);
calls that have not answered get a 503; new connections are refused from the start; the
process exits 0 long before its streams would have ended; and the ledger (SQLite under the
state dir) holds every request, the cut streams as `cancelled` with the tokens they delivered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gatewise.config.loader import load_config
from gatewise.storage.factory import open_stores
from tests.fakes.openai_fake import make_app
from tests.fakes.ports import free_port
from tests.fakes.server import FakeServer
from tests.waiting import eventually

GRACE_S = 1.0
SLACK_S = 0.6  # how much later than the grace period the cut may land (a loaded machine)
ENDLESS_S = 20.0  # the fake's `endless` stream would last this long: 2,000 ticks, 10 ms apart
STREAMS = 4
HELD = 2


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeServer]:
    with FakeServer(make_app) as srv:
        yield srv


@pytest.fixture
def serve(upstream: FakeServer, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    dep = {"api_base": upstream.url + "/v1", "api_key": "sk-upstream"}
    config = {"models": {"endless": [{"model": "openai/gpt-endless", **dep}],
                         "held": [{"model": "openai/gpt-hold", **dep}]},
              "server": {"shutdown_grace_s": GRACE_S, "warmup": False},
              "storage": {"state_dir": str(tmp_path / "state")}}
    path = tmp_path / "gatewise.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "gatewise.cli.main", "serve", "-c", str(path),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log,
                            text=True, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gatewise serve did not become ready"
            time.sleep(0.05)
        yield proc, url, path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()


async def _stream(client: openai.AsyncOpenAI, got: list[float]) -> tuple[BaseException, float]:
    """Reads an endless stream, noting when each content chunk came; returns how it ended."""
    stream = await client.chat.completions.create(
        model="endless", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "talk until I leave"}])
    try:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(time.monotonic())
    except openai.APIError as exc:
        return exc, time.monotonic()
    raise AssertionError("the stream ended without an error event")


async def _leave_mid_stream(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="endless", stream=True, messages=[{"role": "user", "content": "I will leave"}])
    got = 0
    async for chunk in stream:
        got += bool(chunk.choices and chunk.choices[0].delta.content)
        if got == 3:
            break
    await stream.close()


async def _held(client: openai.AsyncOpenAI) -> tuple[BaseException, float]:
    try:
        await client.chat.completions.create(
            model="held", messages=[{"role": "user", "content": "answer slowly"}])
    except openai.APIError as exc:
        return exc, time.monotonic()
    raise AssertionError("a call still running after the grace period was answered")




async def test_sigterm_cuts_streams_after_the_grace_period_and_exits_cleanly(
        serve: tuple[subprocess.Popen[str], str, Path], upstream: FakeServer) -> None:
    proc, url, config_path = serve
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0,
                                timeout=ENDLESS_S + 10)
    # First a client leaves a stream mid-way: the client-gone path in the real process. It also
    # makes the server load its token counter (to count what that stream delivered), which the
    # first stream counted otherwise loads on the event loop (0.3-1 s, o200k) while cutting.
    await _leave_mid_stream(client)
    await eventually(lambda: "stream-aborted" in upstream.notes, 10.0,
                     what="the left stream was cancelled")
    chunks: list[list[float]] = [[] for _ in range(STREAMS)]
    streams = [asyncio.create_task(_stream(client, got)) for got in chunks]
    held = [asyncio.create_task(_held(client)) for _ in range(HELD)]
    await eventually(lambda: all(len(c) >= 3 for c in chunks), 10.0, what="every stream flows")
    await eventually(lambda: sum("hold" in r.path or b"gpt-hold" in r.body
                                 for r in upstream.requests) >= HELD, 10.0,
                     what="the held calls reached the upstream")

    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient(timeout=2) as fresh:
        with pytest.raises(httpx.ConnectError):  # refused at once: a new connection is not taken
            await fresh.get(url + "/readyz")

    ended = await asyncio.wait_for(asyncio.gather(*streams), GRACE_S + 5)
    refused = await asyncio.wait_for(asyncio.gather(*held), GRACE_S + 5)
    code = await asyncio.to_thread(proc.wait, GRACE_S + 10)
    exited = time.monotonic() - t0
    await client.close()

    for (exc, at), got in zip(ended, chunks, strict=True):
        assert isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIStatusError)
        assert exc.code == "server_shutting_down", exc
        assert GRACE_S - 0.1 <= at - t0 <= GRACE_S + SLACK_S
        assert any(t > t0 + GRACE_S / 2 for t in got)  # it kept flowing during the grace period
    for exc, at in refused:
        assert isinstance(exc, openai.APIStatusError) and exc.status_code == 503
        assert exc.code == "server_shutting_down"
        assert at - t0 <= GRACE_S + SLACK_S
    assert code == 0
    assert exited < GRACE_S + 2.5 < ENDLESS_S / 4

    # Every request is in the ledger, committed before the process ended.
    stores = open_stores(load_config(config_path))
    try:
        recs = await stores.ledger.query(limit=100)
    finally:
        await stores.aclose()
    by_alias: dict[str, list[Any]] = {}
    for r in recs:
        by_alias.setdefault(r.alias, []).append(r)
    assert sorted(by_alias) == ["endless", "held"]
    assert len(by_alias["endless"]) == 1 + STREAMS and len(by_alias["held"]) == HELD
    assert {r.outcome for r in recs} == {"cancelled"}
    for r in by_alias["held"]:
        assert r.completion_tokens == 0
    cut = sorted(by_alias["endless"], key=lambda r: r.ts)[1:]  # the one that left came first
    assert all(r.extra == {"usage": "counted"} for r in cut)
    delivered = sorted(len(c) for c in chunks)
    counted = sorted(r.completion_tokens for r in cut)
    for n, tokens in zip(delivered, counted, strict=True):
        assert abs(tokens - n) <= 2, (delivered, counted)  # one "tick" token per chunk
