"""The one place a uvicorn server is built for the gateway app, so `gatewise serve` and the test
suite run exactly the same HTTP settings (protocol, limits, timeouts, shutdown)."""

from __future__ import annotations

import gc
import math
import signal
import socket
from types import FrameType
from typing import Literal

import uvicorn

from gatewise.server.app import GatewayApp
from gatewise.server.protocol import http_protocol

LoopName = Literal["auto", "asyncio", "uvloop"]


def best_loop() -> LoopName:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


# After the grace period the app cuts its calls, which then take milliseconds to send their last
# event; past this much more, uvicorn cancels whatever still runs (a client that stopped
# reading blocks its last send) so the lifespan shutdown, and the ledger flush, always happen.
_CUT_S = 2.0


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which tells the app to drain when shutdown begins.

    uvicorn alone closes the listening sockets and waits for every connection, without a limit,
    or with `timeout_graceful_shutdown` cancels the tasks, which cuts a stream without a word.
    Here the app is told first (`GatewayApp.drain`): /readyz says 503, new calls are refused,
    and after `server.shutdown_grace_s` calls still running end with a `server_shutting_down`
    error; then uvicorn's wait finishes and the lifespan shutdown flushes the ledger. Written
    against uvicorn 0.55's `Server.shutdown`/`handle_exit`.
    """

    def __init__(self, config: uvicorn.Config, app: GatewayApp) -> None:
        super().__init__(config)
        self.gateway_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.gateway_app.drain()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn's, except that the signal is not recorded: uvicorn raises recorded signals
        # again once the server is down, so SIGTERM would kill the process (status -15) after
        # a clean drain. The drain is how gatewise handles SIGTERM; it exits 0.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting
        else:
            self.should_exit = True


# The youngest generation's collection threshold while serving (CPython's default: 700).
SERVING_GC_THRESHOLD = 50_000


def tune_gc_for_serving() -> None:
    """Sets the cyclic garbage collector up for a long-running server; `gatewise serve` calls
    it once the app is built, in each process that serves (never the library or the tests).

    The objects of the requests in flight (64 connections: ~5,000 of them) kept crossing the
    default threshold of 700 net allocations, so a young collection ran every ~10 requests and
    promoted live request objects into older generations, whose collections walked the whole
    heap (~50,000 objects, 16 ms each): 12% of the bare proxy path's CPU (issue 15, measured
    with gc callbacks under `bench/paths_bench.py`'s load). Reference counting frees nearly
    everything a request makes; the collector is only for cycles, which at 50,000 net
    allocations are still collected long before they matter (a few MB). The objects alive
    now (imports, config, the gateway) are collected once and frozen out of every later
    collection, which then walks only what was made since."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(SERVING_GC_THRESHOLD, older, oldest)


def build_server(app: GatewayApp, *, host: str, port: int, log_level: str = "info",
                 loop: LoopName | None = None,
                 headers: list[tuple[str, str]] | None = None) -> DrainingServer:
    """uvicorn with httptools under gatewise's connection limits (`server/protocol.py`: header
    size and count, header and body timeouts, JSON answers to malformed HTTP), no websockets,
    no access log (the gateway's request line, `observability.telemetry`, is the one line per
    request), no logging config of uvicorn's own (its loggers propagate to the root handler
    `observability.logs.configure_logging` installs, so they share the text or JSON format), no
    server or date header, and a shutdown bounded by `server.shutdown_grace_s`. `headers` go on
    every response (uvicorn adds them as it writes the status line: `--workers` names the
    worker that answered)."""
    grace = app.inflight.grace_s
    settings = app.gateway.config.config.server
    config = uvicorn.Config(app, host=host, port=port, loop=loop or best_loop(),
                            http=http_protocol(settings), ws="none",
                            lifespan="on", access_log=False, log_config=None,
                            # X-Forwarded-* still honoured, by the protocol, per request that
                            # has them (`server/protocol.py`); uvicorn's way costs every request
                            proxy_headers=False,
                            log_level=log_level,
                            server_header=False, date_header=False, headers=headers,
                            timeout_keep_alive=math.ceil(settings.keep_alive_s),
                            timeout_graceful_shutdown=math.ceil(grace + _CUT_S))
    return DrainingServer(config, app)
