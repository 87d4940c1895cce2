"""The store-side decisions shared by the SQLite and PostgreSQL breakers (`breaker_rules`),
driven here without a database: the window is a dict, answered the way a backend answers
`AddToWindow` and `ClearWindow`."""

from __future__ import annotations

import pytest

from gatewise.storage import breaker_rules
from gatewise.storage.breaker_rules import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    AddToWindow,
    BreakerRules,
    Reply,
    State,
)

RULES = BreakerRules(failure_threshold=3, failure_ratio=0.5, min_calls=10, bucket_s=1.0,
                     buckets=10, min_open_s=2.0, open_s=30.0, max_level=6)


class Window:
    """One deployment's buckets, as a backend keeps them."""

    def __init__(self) -> None:
        self.buckets: dict[int, tuple[int, int]] = {}

    def run(self, s: State, now: float, fails: int, add: int, token: str = "",
            jitter: float = 1.0) -> Reply:
        steps = breaker_rules.record(RULES, s, now, fails, add, token, jitter)
        answer: tuple[int, int] | None = None
        try:
            while True:
                op = steps.send(answer)
                answer = None
                if isinstance(op, AddToWindow):
                    c, f = self.buckets.get(op.bucket, (0, 0))
                    self.buckets[op.bucket] = (c + op.calls, f + op.failures)
                    self.buckets = {b: v for b, v in self.buckets.items() if b > op.oldest}
                    answer = (sum(v[0] for v in self.buckets.values()),
                              sum(v[1] for v in self.buckets.values()))
                else:
                    self.buckets.clear()
        except StopIteration as done:
            reply: Reply = done.value
            return reply


def test_the_threshold_opens_and_clears_the_window() -> None:
    s, w = State("d"), Window()
    assert w.run(s, 100.0, 1, 1).decision == "" and not s.changed
    assert w.run(s, 100.5, 1, 1).decision == ""
    r = w.run(s, 101.0, 1, 1, jitter=0.9)
    assert (r.decision, r.a, r.b) == (OPEN, 3, 3) and s.changed
    assert s.st == OPEN and s.ou == pytest.approx(101.0 + 2.0 * 0.9) and s.since == 101.0
    assert w.buckets == {}  # a fresh window after recovery


def test_successes_keep_the_ratio_under_the_line_and_old_buckets_expire() -> None:
    s, w = State("d"), Window()
    assert w.run(s, 100.0, 0, 20).decision == ""
    for t in (101.0, 102.0, 103.0, 104.0):
        assert w.run(s, t, 1, 1).decision == ""  # 4 failures of 24 calls: under 50 %
    assert w.run(s, 109.9, 1, 1).decision == ""  # 5 of 25: the successes still count
    # Ten buckets on, the successes have left the window: 6 failures of 6 calls open it.
    r = w.run(s, 110.5, 1, 1)
    assert (r.decision, r.a, r.b) == (OPEN, 6, 6)


def test_a_probe_is_granted_once_and_its_verdict_backs_off_or_closes() -> None:
    s = State("d", st=OPEN, ou=102.0, since=100.0)
    assert breaker_rules.try_probe(s, 101.0, 5.0, "t1").decision == "reject"  # still open
    assert breaker_rules.try_probe(s, 102.0, 5.0, "t1").decision == "probe"
    assert s.st == HALF_OPEN and s.pt == "t1" and s.pu == 107.0
    s.changed = False
    assert breaker_rules.try_probe(s, 103.0, 5.0, "t2").decision == "reject"  # lease held
    assert breaker_rules.try_probe(s, 107.0, 5.0, "t2").decision == "probe"  # lease expired
    w = Window()
    assert w.run(s, 108.0, 1, 0, token="t1").decision == ""  # the stale prober decides nothing
    r = w.run(s, 108.0, 1, 0, token="t2")
    assert r.decision == OPEN and s.n == 1 and s.ou == pytest.approx(108.0 + 4.0)
    s.st, s.pt = HALF_OPEN, "t3"
    r = w.run(s, 120.0, 0, 0, token="t3")
    assert (r.decision, r.a) == (CLOSED, 20.0) and s.n == 0 and s.since is None


def test_release_frees_only_the_callers_own_probe() -> None:
    s = State("d", st=HALF_OPEN, pu=110.0, pt="mine")
    breaker_rules.release(s, "theirs")
    assert s.pt == "mine" and not s.changed
    breaker_rules.release(s, "mine")
    assert (s.pt, s.pu, s.changed) == ("", 0.0, True)
