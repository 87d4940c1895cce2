"""Two gateways sharing a store run a maintenance job once per interval between them: the
lease in SQLite (processes on one host) or Redis (replicas anywhere) lets one of them run it,
the other counts "skipped", and takes over when the first one leaves."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from tests.storage.conftest import backend_details
from tests.waiting import eventually

INTERVAL = 0.3


class Stamp:
    """A job that notes when (and on which gateway) it ran."""

    def __init__(self, who: str, log: list[tuple[str, float]]) -> None:
        self.name = "stamp"
        self.default_interval_s = INTERVAL
        self._who = who
        self._log = log

    async def run(self) -> dict[str, Any]:
        self._log.append((self._who, time.monotonic()))
        return {}


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


def _storage(name: str, d: dict[str, Any]) -> dict[str, Any]:
    if name == "sqlite":
        return {"database": "sqlite", "state_dir": str(d["path"])}
    return {"database": "memory", "redis_url": d["url"], "redis_prefix": d["prefix"]}


@pytest.fixture
async def replicas(backend: tuple[str, dict[str, Any]]) -> AsyncIterator[list[Gateway]]:
    made = []
    for _ in range(2):
        cfg, w = parse_config({"models": {"m": [{"model": "fake/echo"}]},
                               "storage": _storage(*backend),
                               "maintenance": {"lease_s": 0.1}})
        made.append(Gateway(resolve_config(cfg, None, {}, w)))
    yield made
    for gw in made:
        await gw.aclose()


async def test_a_job_runs_once_per_interval_between_two_replicas(
        replicas: list[Gateway], backend: tuple[str, dict[str, Any]]) -> None:
    runs: list[tuple[str, float]] = []
    a, b = replicas
    a.maintenance.register(Stamp("a", runs))
    b.maintenance.register(Stamp("b", runs))
    assert a.maintenance.holder != b.maintenance.holder
    await a.start()
    await asyncio.sleep(0.05)  # b's schedule is out of phase with a's
    await b.start()
    await asyncio.sleep(INTERVAL * 6 + 0.1)
    times = [t for _, t in runs]
    assert 5 <= len(runs) <= 7, runs  # ~once per interval, not once per replica
    assert len({who for who, _ in runs}) == 1  # the holder keeps the job
    gaps = [y - x for x, y in itertools.pairwise(times)]
    assert min(gaps) >= INTERVAL * 0.8, gaps
    holder, other = (a, b) if runs[0][0] == "a" else (b, a)
    assert other.maintenance.jobs["stamp"].skipped >= 3
    assert other.metrics.maintenance_runs.get(("stamp", "skipped")) >= 3
    # The holder leaves: its lease goes, the other replica carries on.
    await holder.aclose()
    before = len(runs)
    left = time.monotonic()
    await eventually(lambda: len(runs) > before, 5, what="the other replica taking over")
    assert runs[-1][0] != runs[0][0]
    print(f"\n{backend[0]}: {len(times)} runs in {INTERVAL * 6 + 0.1:.1f} s between two "
          f"replicas; takeover after {time.monotonic() - left:.2f} s")
