"""The store-side state machine of the shared circuit breakers, once for every SQL backend
(`storage.sqlite_breaker`, `storage.postgres_breaker`).

Why "sans I/O": SQLite runs its transactions synchronously on the store's thread, PostgreSQL
asynchronously through psycopg, so the two cannot share a function that talks to the database.
They share this one instead: `record` is a generator that decides and, where it needs the
database (the sliding window), yields a request (`AddToWindow`, `ClearWindow`) and receives
the answer; each backend only runs those requests in its own transaction, with the
deployment's row locked. The Lua scripts of `storage.redis_breaker` make the same decisions
(Lua cannot share Python code), and each backend's tests play the same scenarios.

Time and jitter come from the caller, so the decisions stay deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import NamedTuple

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerRules:
    """The thresholds of `BreakerConfig`, as the store needs them (the same for every call)."""

    failure_threshold: int
    failure_ratio: float
    min_calls: int
    bucket_s: float
    buckets: int
    min_open_s: float
    open_s: float
    max_level: int

    def period(self, level: int, jitter_factor: float) -> float:
        """`breaker.open_interval`, with the jitter already turned into a factor."""
        first = min(self.min_open_s, self.open_s)
        return min(self.open_s, first * 2.0 ** min(level, self.max_level)) * jitter_factor


class Reply(NamedTuple):
    """A deployment's state after a write, and what the write decided: `decision` is ''
    (nothing changed), 'open', 'closed', 'probe', 'admit' or 'reject'; `a`, `b` are the
    window's (failures, calls) when it opened, or the recovery time when it closed.
    `version` 0: no shared state (never failed)."""

    state: str
    open_until: float
    probe_until: float
    version: int
    decision: str = ""
    a: float = 0.0
    b: float = 0.0


class Row(NamedTuple):
    """A deployment's shared state as a reader's view takes it."""

    deployment: str
    state: str
    open_until: float
    probe_until: float
    version: int


@dataclass(slots=True)
class State:
    """One deployment's row, read inside the transaction that may change it; `changed` tells
    the backend to save it under a new version."""

    dep: str
    st: str = CLOSED
    ou: float = 0.0
    pu: float = 0.0
    pt: str = ""
    since: float | None = None
    n: int = 0
    v: int = 0
    changed: bool = False

    def reply(self, decision: str = "", a: float = 0.0, b: float = 0.0) -> Reply:
        return Reply(self.st, self.ou, self.pu, self.v, decision, a, b)


class AddToWindow(NamedTuple):
    """Add `calls` and `failures` to bucket `bucket`, drop buckets at or below `oldest`, and
    answer with the window's (calls, failures) sums."""

    bucket: int
    oldest: int
    calls: int
    failures: int


class ClearWindow(NamedTuple):
    """Drop every bucket of the deployment (it opened, or it recovered)."""


Step = Generator[AddToWindow | ClearWindow, tuple[int, int] | None, Reply]


def record(rules: BreakerRules, s: State, now: float, fails: int, add: int, token: str,
           jitter_factor: float) -> Step:
    """A failure (`fails` 1), a flush of `add` successes, or a probe's verdict (`token`)."""
    if token:
        if s.st == CLOSED or s.pt != token:
            return s.reply()  # a stale probe: someone else already decided
        s.changed = True
        if fails:
            s.n = min(s.n + 1, rules.max_level)
            s.st, s.ou, s.pu, s.pt = OPEN, now + rules.period(s.n, jitter_factor), 0.0, ""
            return s.reply(OPEN)
        recovery = now - (s.since if s.since is not None else now)
        s.st, s.ou, s.pu, s.pt, s.n, s.since = CLOSED, 0.0, 0.0, "", 0, None
        yield ClearWindow()
        return s.reply(CLOSED, recovery)
    if s.st != CLOSED or (add == 0 and fails == 0):
        return s.reply()  # admitted before it opened: it is open already
    bucket = math.floor(now / rules.bucket_s)
    sums = yield AddToWindow(bucket, bucket - rules.buckets, add, fails)
    assert sums is not None
    calls, nf = sums
    if fails and nf >= rules.failure_threshold and (
            calls < rules.min_calls or nf >= rules.failure_ratio * calls):
        s.st, s.ou, s.pu, s.pt = OPEN, now + rules.period(s.n, jitter_factor), 0.0, ""
        if s.since is None:
            s.since = now
        s.changed = True
        yield ClearWindow()
        return s.reply(OPEN, nf, calls)
    return s.reply("", nf, calls)


def try_probe(s: State, now: float, lease_s: float, token: str) -> Reply:
    """Grants the half-open probe to this caller unless it is open or another holds a live
    lease (the row is locked, so one caller across every process wins)."""
    if s.st == CLOSED:
        return s.reply("admit")
    if now < s.ou or (s.pt and now < s.pu):
        return s.reply("reject")
    s.st, s.pu, s.pt, s.changed = HALF_OPEN, now + lease_s, token, True
    return s.reply("probe")


def release(s: State, token: str) -> Reply:
    """Gives the probe back without a verdict (the call was cancelled)."""
    if s.st != CLOSED and s.pt == token:
        s.pu, s.pt, s.changed = 0.0, "", True
    return s.reply()
