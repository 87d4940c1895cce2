"""`gatewise serve --workers N`: N processes serving one port, under a supervising parent.

Sockets. Each worker gets its own listening socket, bound with `SO_REUSEPORT` to the same
address, so the kernel spreads new connections evenly over the workers by a hash of the
connection. One socket inherited by every worker would be simpler, but then each worker's
asyncio loop races for every accept, and at a burst of connections (a load balancer opening its
pool, `wrk -c64`) the first worker to wake takes them all in one go (asyncio accepts up to its
backlog per wake-up): measured, one worker served everything. The parent itself holds one
more socket bound to the address but never listening: it reserves the port (and resolves
`--port 0` once) while no worker is up, and as it never listens the kernel never routes a
connection to it. Only sockets of the same user may join a `SO_REUSEPORT` group.

Processes. The parent loads the config, binds, then `fork`s the workers: each builds its own
app from the same resolved config (nothing built is shared: event loop, pools, stores) and
runs the same uvicorn server as one-process mode (`server/serving.py`), with the gateway's own
HTTP protocol. The parent runs no event loop and no thread, so forking stays safe; it logs
through a plain (unbatched) stream handler and every worker installs the batching one again.
A worker dies with its parent (`PR_SET_PDEATHSIG`, Linux), so a `kill -9` of the parent leaves
no orphan holding the port.

Supervision. A worker that exits while the parent is not stopping is restarted after a short
backoff, in its slot, with a new socket (the old one's accept queue died with it: connections
still queued there are reset, those on other workers are untouched). More than
`CrashBudget.limit` unexpected exits within `CrashBudget.window_s` means something is wrong
that a restart won't fix (a port taken, a store refusing every start-up): the parent stops the
others and exits 1. SIGTERM or SIGINT to the parent is forwarded to every worker as SIGTERM,
which drains it (`DrainingServer`: /readyz 503, `server.shutdown_grace_s`, ledger flush); a
second signal is forwarded as SIGINT, which a draining worker takes as "stop waiting". A
worker still alive `server.shutdown_grace_s` + 15 s after the first signal is killed.

State across workers (`check_shared_state`). Everything that must be counted once lives in a
store every worker opens: with the default config that is the SQLite state files (budget
counters and rate-limit windows in `BEGIN IMMEDIATE` transactions, the ledger, keys, teams,
the response cache), or PostgreSQL and Redis when configured. `storage.database: memory` or
`storage.counters: memory` would give each worker its own limits and budgets, so N > 1 refuses
them with a config error. Circuit breakers are shared too: through the state dir
(`router.breaker.store: auto` picks `sqlite` with workers, `resilience/breaker_sqlite.py`) or
Redis. What stays per worker, by design: circuit breakers with `router.breaker.store: memory`
(each worker opens its own after its own failures), the key cache (a revoked key stays usable
for up to `cache_s` on the other workers without Redis, as on other replicas), and an embedded
llama.cpp model, which each worker that serves it loads itself: the weights are mmapped, so their pages
are shared through the page cache, but each worker has its own context (KV cache) and its own
generation threads. `/metrics` shows the whole server: each worker writes a snapshot of its
registry to a run directory the parent creates, the worker answering a scrape merges them
(`observability/worker_metrics.py`), and the parent deletes a dead worker's snapshot
(`on_exit`); the `x-gatewise-worker` response header says which worker answered.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from gatewise.errors import ConfigError

if TYPE_CHECKING:
    from gatewise.config.loader import ResolvedConfig

log = logging.getLogger("gatewise.server")

WORKER_HEADER = "x-gatewise-worker"
BACKLOG = 2048
_KILL_MARGIN_S = 15.0
_TICK_S = 0.1
_PR_SET_PDEATHSIG = 1


def check_shared_state(cfg: ResolvedConfig, workers: int) -> list[str]:
    """Refuses (`ConfigError`) a config whose limits and budgets would be counted per worker
    when `workers` > 1; returns notes about what stays per worker (logged by the caller)."""
    if workers <= 1:
        return []
    st = cfg.config.storage
    where = f"server.workers is {workers}, but"
    if st.database == "memory":
        raise ConfigError(f"{where} 'memory' keeps keys, teams, the ledger and the cache in each "
                          "worker's own memory; use 'sqlite' (the default: files every worker "
                          "shares) or 'postgres'", file=cfg.file, path="storage.database")
    counters: str = st.counters
    if counters == "auto":
        counters = "redis" if cfg.storage_redis_url else st.database
    if counters == "memory":
        raise ConfigError(f"{where} 'memory' counters would give each worker its own budgets and "
                          "rate limits; use 'auto', 'sqlite' or 'redis'", file=cfg.file,
                          path="storage.counters")
    notes: list[str] = []
    breaker = cfg.config.router.breaker
    from gatewise.resilience import breaker_store

    if breaker.enabled and breaker_store(breaker, workers=workers, database=st.database,
                                         redis=bool(cfg.redis_url)) == "memory":
        notes.append("circuit breakers are per worker (router.breaker.store "
                     f"'{breaker.store}'); set it to 'sqlite' or 'redis' to share them")
    from gatewise.providers.presets import LOCAL_MODEL_WIRES

    local = sorted({d.target.model for deps in cfg.aliases.values() for d in deps
                    if d.target.wire in LOCAL_MODEL_WIRES})
    if local:
        notes.append(f"each worker loads its own copy of the local model(s) {', '.join(local)} "
                     "(weights are mmapped and shared; contexts and threads are not)")
    return notes


@dataclass
class CrashBudget:
    """How many unexpected worker exits the supervisor tolerates: at most `limit` within
    `window_s`. Restarts back off: 0.25 s after the first recent exit, doubling to 5 s."""

    limit: int = 5
    window_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _exits: list[float] = field(default_factory=list)

    def record(self) -> float | None:
        """One more unexpected exit: the delay before restarting, or None to give up."""
        now = self.clock()
        self._exits = [t for t in self._exits if now - t < self.window_s]
        self._exits.append(now)
        if len(self._exits) > self.limit:
            return None
        return float(min(5.0, 0.25 * 2 ** (len(self._exits) - 1)))


def _address(host: str, port: int) -> tuple[socket.AddressFamily, tuple[object, ...]]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    return family, addr


def _reuseport_socket(family: socket.AddressFamily, addr: tuple[object, ...],
                      *, listen: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        if listen:
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _die_with_parent(parent: int) -> None:
    """Linux: this process gets SIGTERM when the parent dies (then drains like any stop)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


WorkerMain = Callable[[socket.socket, int], int]


class Supervisor:
    """The parent: forks `n` workers running `worker_main(sock, slot)` (its return value is
    the worker's exit status), restarts those that die, forwards stop signals (see the module
    docstring). `on_exit(slot)` runs in the parent whenever a worker has exited (its stale
    state goes). `run()` returns the parent's exit status."""

    def __init__(self, n: int, worker_main: WorkerMain, *, host: str, port: int,
                 stop_timeout_s: float, budget: CrashBudget | None = None,
                 on_exit: Callable[[int], None] | None = None) -> None:
        self.n = n
        self.worker_main = worker_main
        self.stop_timeout_s = stop_timeout_s
        self.budget = budget or CrashBudget()
        self.on_exit = on_exit
        self.family, addr = _address(host, port)
        self._hold = _reuseport_socket(self.family, addr, listen=False)
        self.address: tuple[object, ...] = self._hold.getsockname()
        self.port = int(str(self.address[1]))
        self.workers: dict[int, int] = {}  # pid -> slot
        self._due: dict[int, float] = {}  # slot -> monotonic time of its restart
        self._signals = 0
        self._kill_at: float | None = None
        self._gave_up = False
        self._killed = False
        self._parent = os.getpid()

    # -- workers -----------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        sock = _reuseport_socket(self.family, self.address, listen=True)
        try:
            pid = os.fork()
        except BaseException:
            sock.close()
            raise
        if pid == 0:  # the worker
            code = 1
            try:
                self._hold.close()
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                _die_with_parent(self._parent)
                code = self.worker_main(sock, slot)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        sock.close()  # the worker has it; later workers must not inherit it
        self.workers[pid] = slot
        log.info("worker %d started (pid %d)", slot, pid)

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.workers.pop(pid, None)
            if slot is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.on_exit is not None:
                try:
                    self.on_exit(slot)
                except Exception as exc:
                    log.warning("cleaning up after worker %d failed: %s", slot,
                                type(exc).__name__)
            if self._signals:
                log.info("worker %d (pid %d) stopped (status %d)", slot, pid, code)
                continue
            delay = self.budget.record()
            if delay is None:
                log.critical("workers keep dying (%d exits within %.0f s): stopping",
                             self.budget.limit + 1, self.budget.window_s)
                self._gave_up = True
                self.stop(signal.SIGTERM)
                continue
            log.error("worker %d (pid %d) exited unexpectedly (status %d): restarting in %.2f s",
                      slot, pid, code, delay)
            self._due[slot] = time.monotonic() + delay

    # -- signals ---------------------------------------------------------------------------

    def stop(self, sig: int, frame: FrameType | None = None) -> None:
        """Signal handler (and the give-up path): first call drains every worker, a second
        one tells them to stop waiting."""
        self._signals += 1
        self._due.clear()
        forward = signal.SIGTERM if self._signals == 1 else signal.SIGINT
        if self._kill_at is None:
            self._kill_at = time.monotonic() + self.stop_timeout_s + _KILL_MARGIN_S
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, forward)

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.n):
                if not self._signals:
                    self._spawn(slot)
            while True:
                self._reap()
                now = time.monotonic()
                if self._signals:
                    if not self.workers:
                        break
                    if self._kill_at is not None and now >= self._kill_at:
                        log.error("%d worker(s) still running after the grace period: killing",
                                  len(self.workers))
                        self._killed = True
                        for pid in list(self.workers):
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(pid, signal.SIGKILL)
                        self._kill_at = None
                else:
                    for slot, due in list(self._due.items()):
                        if now >= due:
                            del self._due[slot]
                            self._spawn(slot)
                time.sleep(_TICK_S)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._hold.close()
        return 1 if self._gave_up or self._killed else 0
