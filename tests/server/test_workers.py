"""`gatewise serve --workers 2`, in a subprocess: two processes serve one port, and what must be
counted once is counted once.

With the default embedded state (SQLite files under the state dir) a key's RPM limit of K lets
K requests through in total, not K per worker; a team's token budget is not spent twice; a
circuit breaker shared through Redis (`router.breaker.store: redis`), opened by failures one
worker saw, refuses calls on the other, and so does one shared through the state dir (the
default without Redis) once the threshold is reached in total; one `/metrics` scrape, from
either worker, counts every worker's requests (valid for promtool). Every answer names its
worker (`x-gatewise-worker`), and requests on new connections reach both. The parent restarts
a worker killed with SIGKILL, drains and exits 0 on SIGTERM, gives up (exit 1) on workers that
keep dying, and a config whose limits would be counted per worker (`storage.counters: memory`)
is refused before anything starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewise.cli.main import main
from gatewise.server.workers import WORKER_HEADER, CrashBudget
from tests.fakes.ports import free_port
from tests.fakes.server import FakeServer
from tests.fakes.services import drop_redis_prefix, require_redis
from tests.waiting import wait_until

MASTER = "sk-workers-master"
AUTH = {"authorization": f"Bearer {MASTER}"}
TEAM = "t-workers"
TEAM_TOKENS = 100  # the team's whole budget: 10 calls of the fake's 10 tokens
RPM = 6


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    log: Path
    broken: str = ""  # an alias whose upstream always fails

    def workers(self) -> set[int]:
        """The parent's children: the worker processes."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return {int(p) for p in children.split()}


def _config(upstream: FakeServer, state: Path, **extra: Any) -> dict[str, Any]:
    dep = {"api_base": upstream.url + "/v1", "api_key": "sk-upstream"}
    return {"models": {"chat": [{"model": "openai/gpt-4o-mini", **dep}]},
            "server": {"master_key": MASTER, "warmup": False, "shutdown_grace_s": 1.0},
            "storage": {"state_dir": str(state)},
            "router": {"retry": {"max_retries": 0}},
            **extra}


def _start(config: dict[str, Any], tmp: Path, workers: int = 2) -> Served:
    path = tmp / "gatewise.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = tmp / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gatewise.cli.main", "serve", "-c",
                                 str(path), "--port", str(port), "--workers", str(workers)],
                                stdout=subprocess.DEVNULL, stderr=out, text=True,
                                env=dict(os.environ))
    served = Served(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_until(lambda: _answered_by(served) == {str(i) for i in range(workers)}, 60,
                   what=f"both workers ready ({log})", every_s=0.1)
    except BaseException:
        _stop(served)
        raise
    return served


def _answered_by(served: Served, n: int = 12) -> set[str]:
    """The workers that answered `n` readiness checks, each on a new connection."""
    assert served.proc.poll() is None, served.log.read_text()
    seen = set()
    for _ in range(n):
        try:
            r = httpx.get(served.url + "/readyz", timeout=2)
        except httpx.TransportError:
            continue
        if r.status_code == 200:
            seen.add(r.headers[WORKER_HEADER])
    return seen


def _stop(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            served.proc.wait(20)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait(5)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeServer]:
    from tests.fakes.openai_fake import make_app

    with FakeServer(make_app) as srv:
        yield srv


@pytest.fixture(scope="module")
def breaker_prefix() -> Iterator[str]:
    url = require_redis()
    prefix = f"gatewise-test:workers:{os.getpid()}:{os.urandom(4).hex()}:"
    yield prefix
    import asyncio

    asyncio.run(drop_redis_prefix(url, prefix))


@pytest.fixture(scope="module")
def served(upstream: FakeServer, breaker_prefix: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Two workers on the default SQLite state; breakers shared through Redis. The `broken`
    alias (unique per run, as breaker keys in Redis are named by deployment) always fails."""
    tmp = tmp_path_factory.mktemp("workers")
    broken = f"broken-{os.urandom(3).hex()}"
    cfg = _config(upstream, tmp / "state",
                  accounting={"budgets": [{"scope": "team", "subject": TEAM, "period": "total",
                                           "limit_tokens": TEAM_TOKENS}]})
    cfg["models"][broken] = [{"model": "openai/gpt-fail-500", "api_base": upstream.url + "/v1",
                              "api_key": "sk-upstream"}]
    cfg["router"].update(redis_url=require_redis(), breaker={
        "store": "redis", "failure_threshold": 3, "min_open_s": 60, "open_s": 60})
    # Counters stay on the SQLite state files (with a Redis URL, `auto` would pick Redis).
    cfg["storage"].update(counters="sqlite", redis_prefix=breaker_prefix)
    srv = _start(cfg, tmp)
    srv.broken = broken
    yield srv
    _stop(srv)


def _key(srv: Served, **body: object) -> str:
    r = httpx.post(f"{srv.url}/admin/keys", headers=AUTH, json={"name": "k", **body}, timeout=10)
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def _chat(srv: Served, key: str, model: str = "chat", client: httpx.Client | None = None,
          ) -> httpx.Response:
    body = {"model": model, "max_tokens": 8,
            "messages": [{"role": "user", "content": "hello there"}]}
    headers = {"authorization": f"Bearer {key}"}
    if client is not None:
        return client.post("/v1/chat/completions", json=body, headers=headers)
    return httpx.post(f"{srv.url}/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_requests_on_new_connections_reach_both_workers(served: Served) -> None:
    assert _answered_by(served, 30) == {"0", "1"}
    assert len(served.workers()) == 2


def test_an_rpm_limit_is_enforced_once_across_workers(served: Served) -> None:
    key = _key(served, rpm=RPM)
    answers = [_chat(served, key) for _ in range(3 * RPM)]
    statuses = [r.status_code for r in answers]
    assert statuses.count(200) == RPM, statuses
    assert statuses.count(429) == 2 * RPM, statuses
    assert {r.headers[WORKER_HEADER] for r in answers} == {"0", "1"}  # both took part
    refused = answers[-1].json()["error"]
    assert refused["type"] == "rate_limit_exceeded" or refused["code"] == "rate_limit_exceeded"


def test_a_team_budget_is_not_spent_twice(served: Served) -> None:
    created = httpx.post(f"{served.url}/admin/teams", headers=AUTH, json={"id": TEAM}, timeout=10)
    assert created.status_code in (200, 201), created.text
    key = _key(served, team=TEAM)
    answers = [_chat(served, key) for _ in range(30)]
    ok = [r for r in answers if r.status_code == 200]
    spent = sum(r.json()["usage"]["total_tokens"] for r in ok)
    per_call = ok[0].json()["usage"]["total_tokens"]
    # Per-worker counters would let each worker spend the whole budget (30 calls are enough
    # for two budgets); reservations settle to the real use, so more than half is spent.
    assert TEAM_TOKENS / 2 < spent <= TEAM_TOKENS, (spent, len(ok), per_call)
    assert 30 * per_call > 2 * TEAM_TOKENS
    assert {r.status_code for r in answers} == {200, 402}
    assert {r.headers[WORKER_HEADER] for r in answers} == {"0", "1"}


def test_a_breaker_opened_on_one_worker_refuses_on_the_other(served: Served) -> None:
    broken = served.broken
    with httpx.Client(base_url=served.url, timeout=10) as one:  # one connection: one worker
        failures = [_chat(served, MASTER, broken, one) for _ in range(3)]
    assert [r.status_code for r in failures] == [500] * 3 or \
        all(r.status_code >= 500 for r in failures), [r.text for r in failures]
    failed_on = {r.headers[WORKER_HEADER] for r in failures}
    assert len(failed_on) == 1
    other = None
    for _ in range(50):  # new connections until the other worker answers
        r = _chat(served, MASTER, broken)
        if r.headers[WORKER_HEADER] not in failed_on:
            other = r
            break
    assert other is not None, "the other worker never answered"
    assert other.status_code == 503, other.text
    assert "circuit" in other.text.lower(), other.text


def test_a_killed_worker_is_replaced_and_sigterm_drains_to_exit_0(
        upstream: FakeServer, tmp_path: Path) -> None:
    srv = _start(_config(upstream, tmp_path / "state"), tmp_path)
    try:
        before = srv.workers()
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(srv.workers() - before) == 1 and len(srv.workers()) == 2, 30,
                   what="a new worker in the killed one's place", every_s=0.05)
        wait_until(lambda: _answered_by(srv) == {"0", "1"}, 30, what="both slots serving again",
                   every_s=0.1)
        assert _chat(srv, MASTER).status_code == 200
        workers = srv.workers()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(20) == 0, srv.log.read_text()
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or \
                "zombie" in Path(f"/proc/{pid}/status").read_text()
        assert "exited unexpectedly" in srv.log.read_text()
    finally:
        _stop(srv)


def _chat_requests(srv: Served) -> tuple[float, str, str]:
    """(chat requests counted, the scrape, the worker that answered it), on a new
    connection."""
    r = httpx.get(srv.url + "/metrics", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    total = sum(float(line.rsplit(" ", 1)[1]) for line in r.text.splitlines()
                if line.startswith("gatewise_requests_total{") and 'endpoint="chat"' in line)
    return total, r.text, r.headers[WORKER_HEADER]


def test_one_scrape_counts_every_workers_requests(upstream: FakeServer, tmp_path: Path) -> None:
    from tests.unit.observability.test_metrics_exposition import _promtool

    srv = _start(_config(upstream, tmp_path / "state"), tmp_path)
    try:
        n = 16
        answers = [_chat(srv, MASTER) for _ in range(n)]  # each on a new connection
        assert all(r.status_code == 200 for r in answers)
        by = [r.headers[WORKER_HEADER] for r in answers]
        assert set(by) == {"0", "1"}  # both served some: one worker alone cannot count n
        # Snapshots are at most a second old: soon every scrape, by either worker, says n.
        # (Each worker reads the other's snapshot: until both have answered n once, one of
        # them may still hold the other's snapshot from before its last requests.)
        said_n: set[str] = set()

        def both_say_n() -> bool:
            total, _, worker = _chat_requests(srv)
            if total == n:
                said_n.add(worker)
            return said_n == {"0", "1"}

        wait_until(both_say_n, 15, what="n in a scrape by each worker", every_s=0.2)
        scrapes = [_chat_requests(srv) for _ in range(12)]
        assert {total for total, _, _ in scrapes} == {n}
        assert {worker for _, _, worker in scrapes} == {"0", "1"}
        text = scrapes[0][1]
        count = [line for line in text.splitlines()
                 if line.startswith("gatewise_request_duration_seconds_count{")
                 and 'endpoint="chat"' in line]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in count) == n  # histograms sum too
        # A dead worker's snapshot goes with it: the total drops to what the others served.
        victim = min(srv.workers())
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(srv.workers()) == 2 and victim not in srv.workers(), 30,
                   what="the killed worker replaced", every_s=0.05)
        wait_until(lambda: _chat_requests(srv)[0] in (by.count("0"), by.count("1")), 15,
                   what="the dead worker's numbers gone", every_s=0.2)
    finally:
        _stop(srv)
    _promtool(text)  # the merged exposition is valid for the real Prometheus parser


def test_without_redis_the_workers_share_one_breaker_through_the_state_dir(
        upstream: FakeServer, tmp_path: Path) -> None:
    """The default config (`router.breaker.store: auto`, SQLite state): three failures in
    total, whichever worker saw them, open the breaker for both, so the dead upstream hears
    nothing more from either. Per-worker breakers would each need their own three."""
    threshold = 3
    model = f"gpt-fail-500-{os.urandom(3).hex()}"
    cfg = _config(upstream, tmp_path / "state")
    cfg["models"]["dead"] = [{"model": f"openai/{model}", "api_base": upstream.url + "/v1",
                              "api_key": "sk-upstream"}]
    cfg["router"].update(cooldown_s=0, breaker={  # the breaker alone keeps calls away
        "failure_threshold": threshold, "min_open_s": 60, "open_s": 60})

    def heard() -> int:
        return sum(1 for r in list(upstream.requests)
                   if r.path.endswith("/chat/completions") and r.json().get("model") == model)

    srv = _start(cfg, tmp_path)
    try:
        failed = [_chat(srv, MASTER, "dead") for _ in range(threshold)]  # new connections
        assert all(r.status_code >= 500 for r in failed), [r.text for r in failed]
        assert heard() == threshold
        # The other worker reads the change feed every 0.1 s (`breaker_sqlite.watch_s`).
        time.sleep(0.5)
        refused = [_chat(srv, MASTER, "dead") for _ in range(20)]
        assert {r.status_code for r in refused} == {503}, [r.text for r in refused]
        assert all("circuit" in r.text.lower() for r in refused)
        assert {r.headers[WORKER_HEADER] for r in refused} == {"0", "1"}  # both refused
        assert heard() == threshold
    finally:
        _stop(srv)


def test_workers_that_keep_dying_make_the_parent_give_up() -> None:
    # In a fresh interpreter: forking this one (with the fixtures' server threads) is not safe.
    script = ("import sys; from gatewise.server.workers import CrashBudget, Supervisor; "
              "sup = Supervisor(2, lambda sock, slot: 7, host='127.0.0.1', port=0, "
              "stop_timeout_s=1.0, budget=CrashBudget(limit=3, window_s=60)); "
              "sys.exit(sup.run())")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "workers keep dying" in done.stderr, done.stderr
    assert time.monotonic() - started < 30


def test_restarts_back_off_and_the_budget_forgets_old_exits() -> None:
    now = [0.0]
    budget = CrashBudget(limit=2, window_s=10, clock=lambda: now[0])
    assert budget.record() == 0.25
    assert budget.record() == 0.5
    now[0] = 11.0  # both exits are out of the window
    assert budget.record() == 0.25
    assert budget.record() == 0.5
    assert budget.record() is None


def test_memory_counters_are_refused_with_more_than_one_worker(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gatewise.yaml"
    path.write_text(json.dumps({"models": {"m": [{"model": "fake/echo"}]},
                                "storage": {"state_dir": str(tmp_path), "counters": "memory"}}))
    status = main(["serve", "-c", str(path), "--workers", "2", "--port", str(free_port())])
    assert status != 0
    err = capsys.readouterr().err
    assert "storage.counters" in err and "server.workers is 2" in err
