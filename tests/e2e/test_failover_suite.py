"""Fault injection over real HTTP: every upstream fault, with and without streaming, while a
healthy fallback is configured, gives ZERO client-visible errors over 1,000 requests; errors
that are the caller's own reach the upstream exactly once and never fail over.

The one fault no gateway can hide is a stream cut *after* its first byte reached the client:
that stream must end with an OpenAI-shaped error event (never a silent cut, never a replay);
the server tests at the end prove it over HTTP with the official SDK.

Upstreams: the shared OpenAI fake (faults chosen by model name, tests/fakes/faults.py) plus
four faults it lacks, added here by a middleware: `hang` (no response at all for seconds),
`stall` (headers, then nothing: a stall before the first token), `badchunk` (a malformed first
SSE frame / JSON body) and `nousage` (a complete answer without usage). The upstream runs in
its own process (a second core) and requests run concurrently, BATCH in flight at a time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import multiprocessing
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from gatewise import Gateway
from gatewise.config.loader import ResolvedConfig, parse_config, resolve_config
from gatewise.errors import (
    AuthenticationError,
    BadRequestError,
    GatewayError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderResponseError,
)
from gatewise.resilience.fallback import FallbackMiddleware
from tests.fakes import openai_fake
from tests.fakes.gateway import GatewayServer
from tests.fakes.ports import free_port
from tests.fakes.server import FakeServer

REQUESTS = 1000
BATCH = 250
CALLER_ERROR_REQUESTS = 100
TIMEOUT_S = 0.15  # the faulty deployments' timeout; stalls last much longer
HANG_S = 5.0  # far beyond TIMEOUT_S even when a busy machine delays the client's timers
HEALTHY = "healthy"


class Upstream:
    """The OpenAI fake plus the extra faults, counting chat requests per upstream model."""

    def __init__(self) -> None:
        self.hits: collections.Counter[str] = collections.Counter()

    def make_app(self, srv: FakeServer) -> web.Application:
        app = openai_fake.make_app(srv)
        app.middlewares.append(self._faults)
        return app

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/_hits":
            return web.json_response(self.hits)
        if not request.path.endswith("/chat/completions"):
            return await handler(request)  # type: ignore[no-any-return]
        body = await request.json()
        model, stream = str(body.get("model", "")), bool(body.get("stream"))
        self.hits[model] += 1
        if "hang" in model:
            await asyncio.sleep(HANG_S)  # no headers, no body: the gateway times out first
            return web.Response(status=204)
        if "stall" in model:
            return await _stall(request, stream)
        if "badchunk" in model:
            return await _bad_chunk(request, stream)
        if "nousage" in model:
            return await _no_usage(request, body, stream)
        return await handler(request)  # type: ignore[no-any-return]


async def _stall(request: web.Request, stream: bool) -> web.StreamResponse:
    resp = web.StreamResponse(headers={
        "content-type": "text/event-stream" if stream else "application/json"})
    await resp.prepare(request)
    await asyncio.sleep(HANG_S)  # the gateway gives up long before
    return resp


async def _bad_chunk(request: web.Request, stream: bool) -> web.StreamResponse:
    if not stream:
        return web.Response(body=b'{"id": "x", "choices": [{oops', content_type="application/json")
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(b'data: {"id": "chatcmpl-x", "choices": [{oops\n\n')
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def _no_usage(request: web.Request, body: dict[str, Any], stream: bool) -> web.StreamResponse:
    text = f"Hello! You said: {body['messages'][-1]['content']}"
    base = {"id": "chatcmpl-nousage", "created": 1, "model": body["model"]}
    if not stream:
        return web.json_response({**base, "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text},
             "finish_reason": "stop"}]})
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    for delta, finish in (({"role": "assistant", "content": ""}, None), ({"content": text}, None),
                          ({}, "stop")):
        chunk = {**base, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    return resp


@dataclass(frozen=True)
class Fault:
    name: str
    model: str  # the upstream model name that triggers it
    refused: bool = False  # no server listens at all
    fails_over: bool = True  # False: the upstream answers (degraded), nothing to fail over
    short_timeout: bool = False  # the deployment gives up after TIMEOUT_S


FAULTS = [
    Fault("429-with-retry-after", "gpt-fail-429"),
    Fault("429-without-retry-after", "gpt-fail-429-noretry"),
    Fault("500", "gpt-fail-500"),
    Fault("503", "gpt-fail-503"),
    Fault("529", "gpt-fail-529"),
    Fault("connection-reset", "gpt-reset"),
    Fault("connection-refused", "gpt-4o-mini", refused=True),
    Fault("timeout", "gpt-hang", short_timeout=True),
    Fault("stall-before-first-token", "gpt-stall", short_timeout=True),
    Fault("stream-cut-midway", "gpt-cut"),
    Fault("malformed-chunk", "gpt-badchunk"),
    Fault("missing-usage", "gpt-nousage", fails_over=False),
    # Not an outage, but the request fits a larger window: `context_window_fallbacks`.
    Fault("context-too-long", "gpt-fail-context"),
]
CALLER_FAULTS = [
    ("400", "gpt-fail-400", BadRequestError),
    ("401", "gpt-fail-401", AuthenticationError),
    ("403", "gpt-fail-403", PermissionDeniedError),
    ("404", "gpt-fail-404", ModelNotFoundError),
]


def _serve_upstream(ports: Any) -> None:
    """Runs in its own process, so the fake upstream and the gateway use separate cores. The
    listen backlog is raised above a batch: with the default (128) a burst of new connections
    loses SYNs and waits a full second for TCP to retransmit them."""
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # clients that gave up
    up = Upstream()

    async def serve() -> None:
        runner = web.AppRunner(up.make_app(FakeServer(up.make_app)), access_log=None,
                               handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2 * BATCH)
        await site.start()
        ports.put(runner.addresses[0][1])
        await asyncio.Event().wait()  # until the test process terminates it

    asyncio.run(serve())


class UpstreamProcess:
    def __init__(self, url: str) -> None:
        self.url = url

    def hits(self) -> collections.Counter[str]:
        """Chat requests received so far, per upstream model name."""
        with urllib.request.urlopen(self.url + "/_hits", timeout=10) as resp:
            return collections.Counter(json.loads(resp.read()))


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamProcess]:
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    proc = ctx.Process(target=_serve_upstream, args=(ports,), daemon=True)
    proc.start()
    try:
        yield UpstreamProcess(f"http://127.0.0.1:{ports.get(timeout=30)}")
    finally:
        proc.terminate()  # hung handlers may still be sleeping: no graceful drain needed
        proc.join(10)
        ports.close()


@pytest.fixture(scope="module")
def resolved(upstream: UpstreamProcess) -> ResolvedConfig:
    base = upstream.url + "/v1"
    dead = f"http://127.0.0.1:{free_port()}/v1"
    models: dict[str, list[dict[str, Any]]] = {
        HEALTHY: [{"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "sk-up"}]}
    for f in FAULTS:
        dep: dict[str, Any] = {"model": f"openai/{f.model}", "api_key": "sk-up",
                               "api_base": dead if f.refused else base}
        if f.short_timeout:
            dep.update(timeout=TIMEOUT_S, stream_timeout=TIMEOUT_S)
        models[f.name] = [dep]
    for name, model, _ in CALLER_FAULTS:
        models[name] = [{"model": f"openai/{model}", "api_base": base, "api_key": "sk-up"}]
    cfg, w = parse_config({"models": models, "router": {
        "fallbacks": {name: [HEALTHY] for name in models
                      if name not in (HEALTHY, "context-too-long")},
        "context_window_fallbacks": {"context-too-long": [HEALTHY]},
        # Small, bounded retries once the retry middleware is in the chain.
        "retry": {"max_retries": 1, "base_delay_s": 0.001, "max_delay_s": 0.005},
        "timeout_s": 30,
    }})
    return resolve_config(cfg, None, {}, w)


def build_gateway(resolved: ResolvedConfig) -> Gateway:
    """The whole chain as `Gateway` wires it; while it does not wire the fallback middleware
    itself (exposed as `Gateway.fallback`), the suite adds it."""
    gw = Gateway(resolved)
    if getattr(gw, "fallback", None) is not None:
        return gw
    return Gateway(resolved, middlewares=[FallbackMiddleware(resolved.config.router)])


async def _one(gw: Gateway, alias: str, i: int, stream: bool) -> tuple[str, str | None]:
    """(text, serving deployment) of one request; any exception is a client-visible error."""
    prompt = f"request {i}"
    if stream:
        s = gw.stream(prompt, model=alias, stream_options={"include_usage": True})
        async for _ in s:
            pass
        text, info = s.text, s.info
        dep = info.deployment if info is not None else None
    else:
        r = await gw.chat(prompt, model=alias)
        text, dep = r.content or "", r.deployment
    assert text == f"Hello! You said: {prompt}", text
    return text, dep


async def _hammer(gw: Gateway, alias: str, n: int, stream: bool) -> tuple[list[str | None],
                                                                          list[BaseException]]:
    """n requests, at most BATCH in flight at once; (serving deployments, errors)."""
    gate = asyncio.Semaphore(BATCH)

    async def gated(i: int) -> tuple[str, str | None]:
        async with gate:
            return await _one(gw, alias, i, stream)

    outs = await asyncio.gather(*(gated(i) for i in range(n)), return_exceptions=True)
    errors = [o for o in outs if isinstance(o, BaseException)]
    return [o[1] for o in outs if not isinstance(o, BaseException)], errors


# A stream cut after its first byte cannot fail over (bytes already reached the client); the
# error-event tests below cover it.
CASES = [pytest.param(f, stream, id=f"{f.name}-{'stream' if stream else 'json'}")
         for f in FAULTS for stream in (False, True)
         if not (stream and f.name == "stream-cut-midway")]


@pytest.mark.parametrize(("fault", "stream"), CASES)
async def test_zero_client_visible_errors_with_a_healthy_fallback(
        fault: Fault, stream: bool, resolved: ResolvedConfig,
        upstream: UpstreamProcess) -> None:
    healthy_before = upstream.hits()["gpt-4o-mini"]
    t0 = time.perf_counter()
    async with build_gateway(resolved) as gw:
        deployments, errors = await _hammer(gw, fault.name, REQUESTS, stream)
    elapsed = time.perf_counter() - t0
    assert errors == [], f"{len(errors)} client-visible errors, first: {errors[0]!r}"
    expected = f"{HEALTHY}:openai/gpt-4o-mini" if fault.fails_over else \
        f"{fault.name}:openai/{fault.model}"
    assert set(deployments) == {expected}
    served_by_healthy = upstream.hits()["gpt-4o-mini"] - healthy_before
    assert served_by_healthy == (REQUESTS if fault.fails_over else 0)
    assert elapsed < 30, f"{fault.name}: {elapsed:.1f}s"


async def test_a_stream_cut_after_its_first_byte_ends_in_an_error_never_a_silent_cut(
        resolved: ResolvedConfig, upstream: UpstreamProcess) -> None:
    """Each stream either reached the cut upstream, showed its first words and then raised, or
    (once a circuit breaker in the chain opened on those failures) was served whole by the
    fallback before its first byte. No stream ends short without an error, none is replayed."""
    healthy_before = upstream.hits()["gpt-4o-mini"]
    outcomes: list[tuple[str, str | None, BaseException | None]] = []
    gate = asyncio.Semaphore(BATCH)

    async def one(i: int) -> None:
        async with gate:
            s = gw.stream(f"cut me {i}", model="stream-cut-midway")
            error: BaseException | None = None
            try:
                async for _ in s:
                    pass
            except GatewayError as exc:
                error = exc
            info = s.info
            outcomes.append((s.text, info.deployment if info else None, error))

    async with build_gateway(resolved) as gw:
        await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    cut = [(text, err) for text, _, err in outcomes if err is not None]
    whole = [(i, text, dep) for i, (text, dep, err) in enumerate(outcomes) if err is None]
    assert len(cut) + len(whole) == REQUESTS and cut
    assert all(isinstance(e, ProviderResponseError) and text == "Hello! You " for text, e in cut)
    assert all(text.startswith("Hello! You said: cut me ") and dep == f"{HEALTHY}:openai/gpt-4o-mini"
               for _, text, dep in whole)
    assert upstream.hits()["gpt-4o-mini"] - healthy_before == len(whole)  # nothing replayed


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("name", "model", "error"), CALLER_FAULTS, ids=[c[0] for c in CALLER_FAULTS])
async def test_caller_errors_reach_the_upstream_exactly_once_and_never_fail_over(
        name: str, model: str, error: type[GatewayError], stream: bool,
        resolved: ResolvedConfig, upstream: UpstreamProcess) -> None:
    hits = upstream.hits()
    before, healthy_before = hits[model], hits["gpt-4o-mini"]
    async with build_gateway(resolved) as gw:
        _, errors = await _hammer(gw, name, CALLER_ERROR_REQUESTS, stream)
    assert len(errors) == CALLER_ERROR_REQUESTS
    assert all(type(e) is error for e in errors), {type(e).__name__ for e in errors}
    hits = upstream.hits()
    assert hits[model] - before == CALLER_ERROR_REQUESTS
    assert hits["gpt-4o-mini"] == healthy_before


# -- over HTTP: the real server, the official SDK ---------------------------------------------

@pytest.fixture(scope="module")
def served(resolved: ResolvedConfig) -> Iterator[GatewayServer]:
    with GatewayServer(gateway=build_gateway(resolved)) as srv:
        yield srv


async def _sse(url: str, model: str) -> tuple[dict[str, str], list[bytes]]:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "a b c d"}]}
    async with aiohttp.ClientSession() as session, \
            session.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        raw = await resp.read()
        return dict(resp.headers), [e for e in raw.split(b"\n\n") if e]


async def test_server_fails_a_stream_over_before_its_first_byte(served: GatewayServer) -> None:
    headers, events = await _sse(served.url, "500")
    assert headers["x-gatewise-fallback"] == HEALTHY
    assert headers["x-gatewise-deployment"] == f"{HEALTHY}:openai/gpt-4o-mini"
    assert events[-1] == b"data: [DONE]"
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or ""
                   for e in events[:-1] if json.loads(e[6:])["choices"])
    assert text == "Hello! You said: a b c d"


async def test_server_ends_a_stream_cut_after_its_first_byte_with_an_openai_error_event(
        served: GatewayServer) -> None:
    headers, events = await _sse(served.url, "stream-cut-midway")
    assert "x-gatewise-fallback" not in headers
    assert b"[DONE]" not in events[-1]
    error = json.loads(events[-1].removeprefix(b"data: "))
    assert set(error) == {"error"}
    assert error["error"]["type"] == "api_error"
    assert error["error"]["code"] == "upstream_bad_response"
    assert "stream ended" in error["error"]["message"]
    assert any(b'"content":"Hello! "' in e for e in events[:-1])  # the first bytes did arrive


def test_the_official_sdk_sees_failover_as_success_and_a_late_cut_as_an_error(
        served: GatewayServer) -> None:
    with openai.OpenAI(base_url=served.url + "/v1", api_key="sk-any", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="529", messages=[{"role": "user", "content": "hi"}])
        assert raw.headers["x-gatewise-fallback"] == HEALTHY
        assert raw.parse().choices[0].message.content == "Hello! You said: hi"
        stream = client.chat.completions.create(
            model="stream-cut-midway", messages=[{"role": "user", "content": "a b c d"}],
            stream=True)
        seen: list[str] = []
        with pytest.raises(openai.APIError, match="stream ended"):
            for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
        assert "".join(seen) == "Hello! You "
        with contextlib.suppress(Exception):
            stream.close()
