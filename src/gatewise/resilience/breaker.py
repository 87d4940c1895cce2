"""Circuit breakers, one per deployment: closed → open → half-open (one probe) → closed.

Why: a deployment that is down costs every request sent to it a timeout or an error, and the
retries pile more load on it. The breaker notices (failures within a window), takes it out of
rotation for an open period (the router skips it: `available()` is False, so the next request
goes elsewhere without another attempt here), then lets exactly one request through as a
probe. The probe's verdict closes the breaker or opens it again. A single probe, not a
trickle, because a recovering service is the most fragile: one request learns as much as ten.

How long it stays open: `min_open_s` (1 s by default) the first time, doubled after every
failed probe up to `open_s`, back to `min_open_s` once a probe succeeds; each period is
shortened by up to `JITTER` (an injected rng) so breakers that opened together do not probe
together. Why a backoff rather than a fixed `open_s`: most outages are short (a restart, a
deploy, a blip), and a fixed 30 s turned a 3 s outage into 30 s of refusals even where the
deployment was the only one serving its alias. A probe costs one request, so probing early
is cheap; the doubling keeps a long outage at one probe per `open_s`.

No other deployment to serve (one deployment, or all of an alias's open): nothing changes
in the breaker. While the period runs, requests are refused at once with `CircuitOpenError`
carrying `retry_after` (the server's `Retry-After`), rather than held until the probe time:
held requests would pile up on the gateway during an outage and all wake together, while
only one of them may probe. Once the period is over the probe slot is free, `available()`
says so, and the router sends the next request as the probe: the short first period is what
makes recovery follow the upstream within seconds.

When to open (all within the last `window_s`): at least `failure_threshold` failures, and, once
the window saw `min_calls` calls, those failures must also be at least `failure_ratio` of
them. A quiet deployment opens on a few failures in a row; a busy one with a few scattered
errors among thousands of successes stays closed.

What counts as a failure (`is_deployment_failure`): the deployment's own faults (5xx, 529,
429, timeouts, connection errors, garbage responses, 401/403/404: a broken key or model fails
every request), not the caller's 400s and not cancellations (a hedge that lost, a client that
left, the call's own deadline) which say nothing about the deployment.

`MemoryBreakers` keeps the state in this process; `breaker_redis.RedisBreakers` shares it by
every replica. Both implement `Breakers`, the interface `BreakerMiddleware` and the router use.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gatewise.config.schema import BreakerConfig
from gatewise.errors import BadRequestError, CircuitOpenError, GatewayError, ProviderError

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

_BUCKETS = 10
# Each open period is shortened by a random fraction of up to this much.
JITTER = 0.1
# Doubling stops long before a float overflows (2**32 s is past any `open_s`).
MAX_LEVEL = 32


def is_deployment_failure(exc: BaseException) -> bool:
    """Whether `exc` says the deployment is unhealthy (see the module docstring)."""
    if isinstance(exc, ProviderError):
        return not isinstance(exc, BadRequestError)
    return isinstance(exc, Exception) and not isinstance(exc, GatewayError)


def open_interval(cfg: BreakerConfig, failed_probes: int, jitter: float) -> float:
    """The open period after `failed_probes` failed probes in a row: `min_open_s` doubled
    that many times, capped at `open_s`, times `1 - JITTER * jitter` (`jitter` in [0, 1)).
    `storage.redis_breaker` computes the same in Lua for `breaker_redis`."""
    first = min(cfg.min_open_s, cfg.open_s)
    return min(cfg.open_s, first * 2.0 ** min(failed_probes, MAX_LEVEL)) * (1.0 - JITTER * jitter)


def probe_wait(cfg: BreakerConfig, open_until: float, probe_until: float, now: float) -> float:
    """Seconds until a probe may go (0.0: now). While a probe runs, its verdict usually comes
    within a request's time, so the wait is the shortest open period (or the rest of the
    probe's lease when that is shorter), not the lease itself."""
    if now < open_until:
        return open_until - now
    if now < probe_until:
        return min(probe_until - now, min(cfg.min_open_s, cfg.open_s))
    return 0.0


@dataclass(slots=True, frozen=True)
class Transition:
    """A breaker changed state. `recovery_s` (on closing) is the time since it first opened;
    `open_s` (on opening) is how long this open period lasts."""

    deployment: str
    old: str
    new: str
    error_type: str | None = None
    failures: int = 0
    calls: int = 0
    recovery_s: float | None = None
    open_s: float | None = None


def circuit_open(deployment_id: str, retry_in_s: float | None = None) -> CircuitOpenError:
    """The refusal for one deployment; `retry_in_s` becomes the error's `retry_after`."""
    hint = f"; next probe in {retry_in_s:.1f}s" if retry_in_s is not None and retry_in_s > 0 else ""
    return CircuitOpenError(f"circuit open for deployment '{deployment_id}'{hint}",
                            retry_after=retry_in_s)


class Breakers(Protocol):
    """Breaker state for every deployment of a gateway.

    `is_closed` and `available` are synchronous and O(1) (the router calls `available` for
    every candidate of every request). The rest are awaited only off the success path: on a
    failure, or when the breaker is not closed.
    """

    def is_closed(self, deployment_id: str) -> bool:
        """Fast path: closed means "admit without asking anything"."""
        ...

    def available(self, deployment_id: str) -> bool:
        """Whether the router may choose this deployment now (closed, or a probe is free)."""
        ...

    def state(self, deployment_id: str) -> str: ...

    def retry_in(self, deployment_id: str) -> float:
        """Seconds until this deployment may take a probe (0.0 when `available` now); what a
        refusal tells the client as `Retry-After`. Synchronous and O(1), like `available`."""
        ...

    async def admit(self, deployment_id: str, lease_s: float) -> str | None:
        """None: go ahead as a normal call. A token: this call is the half-open probe and must
        report its verdict with it. Raises `CircuitOpenError` when the call must not go."""
        ...

    def note_success(self, deployment_id: str) -> None:
        """A normal (non-probe) call succeeded. Synchronous and cheap: on the hot path."""
        ...

    async def record_failure(self, deployment_id: str, error_type: str,
                             token: str | None = None) -> Transition | None: ...

    async def record_probe_success(self, deployment_id: str, token: str) -> Transition | None: ...

    async def release(self, deployment_id: str, token: str) -> None:
        """The probe ended without a verdict (cancelled): another call may probe."""
        ...

    def start(self) -> None:
        """Starts background work, if any, on the running loop (idempotent, cheap)."""
        ...

    def snapshot(self) -> dict[str, dict[str, Any]]: ...

    async def aclose(self) -> None: ...


class CircuitBreaker:
    """One deployment's state machine. Times come from the caller, so it is clock-agnostic;
    the jitter comes from `rng` (a private one when not given)."""

    __slots__ = ("_calls", "_cfg", "_fails", "_rng", "_slot", "_width", "failed_probes",
                 "open_until", "probe_token", "probe_until", "since", "state")

    def __init__(self, cfg: BreakerConfig, now: float, rng: random.Random | None = None) -> None:
        self._cfg = cfg
        self._rng = rng if rng is not None else random.Random()
        self._width = cfg.window_s / _BUCKETS
        self._calls = [0] * _BUCKETS
        self._fails = [0] * _BUCKETS
        self._slot = int(now / self._width)
        self.state = CLOSED
        self.open_until = 0.0
        self.probe_until = 0.0
        self.probe_token: str | None = None
        self.since: float | None = None  # when the current outage began (first opening)
        self.failed_probes = 0  # in a row, since the breaker last closed: the backoff level

    # -- the sliding window ----------------------------------------------------------------
    def _index(self, now: float) -> int:
        slot = int(now / self._width)
        last = self._slot
        if slot > last:
            calls, fails = self._calls, self._fails
            for s in range(last + 1, min(slot, last + _BUCKETS) + 1):
                calls[s % _BUCKETS] = fails[s % _BUCKETS] = 0
            self._slot = slot
        return self._slot % _BUCKETS

    def _clear(self) -> None:
        self._calls = [0] * _BUCKETS
        self._fails = [0] * _BUCKETS

    def counts(self, now: float) -> tuple[int, int]:
        """(calls, failures) in the window."""
        self._index(now)
        return sum(self._calls), sum(self._fails)

    # -- reads -----------------------------------------------------------------------------
    def available(self, now: float) -> bool:
        if self.state == CLOSED:
            return True
        return now >= self.open_until and (self.probe_token is None or now >= self.probe_until)

    def retry_in(self, now: float) -> float:
        if self.state == CLOSED:
            return 0.0
        return probe_wait(self._cfg, self.open_until,
                          self.probe_until if self.probe_token is not None else 0.0, now)

    def visible_state(self, now: float) -> str:
        """OPEN until the open period has passed, then HALF_OPEN (waiting for, or running, a
        probe)."""
        if self.state == OPEN and now >= self.open_until:
            return HALF_OPEN
        return self.state

    # -- writes ----------------------------------------------------------------------------
    def success(self, now: float) -> None:
        if self.state == CLOSED:
            self._calls[self._index(now)] += 1

    def try_probe(self, now: float, lease_s: float, token: str) -> bool:
        """Grants at most one probe at a time (the caller checked the state is not closed);
        a probe whose lease ran out (its caller vanished) no longer blocks the next one."""
        if now < self.open_until or (self.probe_token is not None and now < self.probe_until):
            return False
        self.state = HALF_OPEN
        self.probe_token = token
        self.probe_until = now + lease_s
        return True

    def failure(self, now: float, token: str | None, error_type: str) -> Transition | None:
        if token is not None:
            if self.state == CLOSED or token != self.probe_token:
                return None  # a stale probe: someone else already decided
            self.failed_probes = min(self.failed_probes + 1, MAX_LEVEL)
            return self._open(now, HALF_OPEN, error_type, 0, 0)
        if self.state != CLOSED:
            return None  # admitted before the breaker opened; it is open already
        i = self._index(now)
        self._calls[i] += 1
        self._fails[i] += 1
        calls, fails = sum(self._calls), sum(self._fails)
        cfg = self._cfg
        if fails >= cfg.failure_threshold and (
                calls < cfg.min_calls or fails >= cfg.failure_ratio * calls):
            return self._open(now, CLOSED, error_type, fails, calls)
        return None

    def probe_success(self, now: float, token: str) -> Transition | None:
        if self.state == CLOSED or token != self.probe_token:
            return None
        recovery = now - self.since if self.since is not None else None
        self.state = CLOSED
        self.probe_token = None
        self.probe_until = self.open_until = 0.0
        self.since = None
        self.failed_probes = 0
        self._clear()
        return Transition("", HALF_OPEN, CLOSED, recovery_s=recovery)

    def release(self, token: str) -> None:
        if token == self.probe_token:
            self.probe_token = None
            self.probe_until = 0.0

    def _open(self, now: float, old: str, error_type: str, fails: int, calls: int) -> Transition:
        self.state = OPEN
        period = open_interval(self._cfg, self.failed_probes, self._rng.random())
        self.open_until = now + period
        self.probe_token = None
        self.probe_until = 0.0
        if self.since is None:
            self.since = now
        self._clear()
        return Transition("", old, OPEN, error_type, fails, calls, open_s=period)


class MemoryBreakers:
    """Breakers for this process. No locks: one event loop owns them, and every method runs
    without awaiting in between, so check-and-set (the single probe) is atomic here. `clock`
    and `rng` (the jitter) are injectable for tests."""

    def __init__(self, config: BreakerConfig, *, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._b: dict[str, CircuitBreaker] = {}
        self._tokens = 0

    def _get(self, deployment_id: str) -> CircuitBreaker:
        b = self._b.get(deployment_id)
        if b is None:
            b = self._b[deployment_id] = CircuitBreaker(self.config, self._clock(), self._rng)
        return b

    def is_closed(self, deployment_id: str) -> bool:
        b = self._b.get(deployment_id)
        return b is None or b.state == CLOSED

    def available(self, deployment_id: str) -> bool:
        b = self._b.get(deployment_id)
        return b is None or b.state == CLOSED or b.available(self._clock())

    def state(self, deployment_id: str) -> str:
        b = self._b.get(deployment_id)
        return CLOSED if b is None else b.visible_state(self._clock())

    def retry_in(self, deployment_id: str) -> float:
        b = self._b.get(deployment_id)
        return 0.0 if b is None else b.retry_in(self._clock())

    async def admit(self, deployment_id: str, lease_s: float) -> str | None:
        return self.admit_now(deployment_id, lease_s)

    def admit_now(self, deployment_id: str, lease_s: float) -> str | None:
        b = self._b.get(deployment_id)
        if b is None or b.state == CLOSED:
            return None
        self._tokens += 1
        token = f"p{self._tokens}"
        now = self._clock()
        if not b.try_probe(now, lease_s, token):
            raise circuit_open(deployment_id, b.retry_in(now))
        return token

    def note_success(self, deployment_id: str) -> None:
        b = self._b.get(deployment_id)
        if b is not None:
            b.success(self._clock())
        # Never seen failing: until a first failure there is nothing to weigh successes
        # against, so counting starts with it and a healthy deployment pays one dict lookup.

    async def record_failure(self, deployment_id: str, error_type: str,
                             token: str | None = None) -> Transition | None:
        return self.failure_now(deployment_id, error_type, token)

    def failure_now(self, deployment_id: str, error_type: str,
                    token: str | None = None) -> Transition | None:
        t = self._get(deployment_id).failure(self._clock(), token, error_type)
        return _named(t, deployment_id)

    async def record_probe_success(self, deployment_id: str, token: str) -> Transition | None:
        return self.probe_success_now(deployment_id, token)

    def probe_success_now(self, deployment_id: str, token: str) -> Transition | None:
        b = self._b.get(deployment_id)
        return None if b is None else _named(b.probe_success(self._clock(), token), deployment_id)

    async def release(self, deployment_id: str, token: str) -> None:
        b = self._b.get(deployment_id)
        if b is not None:
            b.release(token)

    def start(self) -> None:
        return None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        for dep, b in self._b.items():
            calls, fails = b.counts(now)
            out[dep] = {"state": b.visible_state(now), "calls": calls, "failures": fails,
                        "open_for_s": max(0.0, b.open_until - now) if b.state != CLOSED else 0.0,
                        "probing": b.probe_token is not None}
        return out

    async def aclose(self) -> None:
        return None


def _named(t: Transition | None, deployment_id: str) -> Transition | None:
    if t is None:
        return None
    return Transition(deployment_id, t.old, t.new, t.error_type, t.failures, t.calls,
                      t.recovery_s, t.open_s)
