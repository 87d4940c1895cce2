"""A multi-process server's scrape: this worker's live counts plus every peer's snapshot.
Reading the peers must never make a counter go backwards: a peer missing from one directory
listing (its snapshot being renamed into place) or a snapshot that cannot be decoded counts
with the last good reading, and only a deleted snapshot (its worker exited) leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewise.observability.metrics import GatewayMetrics
from gatewise.observability.worker_metrics import WorkerMetrics, remove_snapshot

LABELS = ("chat", "m", "d", "200")


def _worker(tmp_path: Path, slot: int, served: int) -> WorkerMetrics:
    metrics = GatewayMetrics()
    for _ in range(served):
        metrics.requests.inc(LABELS)
    return WorkerMetrics(metrics, tmp_path, slot)


def _total(text: str) -> float:
    [line] = [x for x in text.splitlines() if x.startswith("gatewise_requests_total{")]
    return float(line.rsplit(" ", 1)[1])


async def test_a_scrape_sums_this_workers_live_counts_with_its_peers_snapshots(
        tmp_path: Path) -> None:
    me, peer = _worker(tmp_path, 0, 7), _worker(tmp_path, 1, 9)
    await peer.write()
    assert _total(await me.render()) == 16
    me.metrics.requests.inc(LABELS)  # live, no snapshot of its own needed
    assert _total(await me.render()) == 17


async def test_a_peer_missing_from_one_listing_still_counts(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    me, peer = _worker(tmp_path, 0, 7), _worker(tmp_path, 1, 9)
    await peer.write()
    assert _total(await me.render()) == 16
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter(()))
    assert _total(await me.render()) == 16


async def test_an_undecodable_snapshot_counts_with_its_last_good_reading(tmp_path: Path) -> None:
    me, peer = _worker(tmp_path, 0, 7), _worker(tmp_path, 1, 9)
    await peer.write()
    assert _total(await me.render()) == 16
    (tmp_path / "worker-1.json").write_bytes(b'{"gatewise_requests_total": [[')
    assert _total(await me.render()) == 16


async def test_a_dead_workers_snapshot_leaves_the_totals_once_deleted(tmp_path: Path) -> None:
    me, peer = _worker(tmp_path, 0, 7), _worker(tmp_path, 1, 9)
    await peer.write()
    assert _total(await me.render()) == 16
    remove_snapshot(tmp_path, 1)
    assert _total(await me.render()) == 7


async def test_an_unknown_file_that_never_decoded_is_ignored(tmp_path: Path) -> None:
    me = _worker(tmp_path, 0, 7)
    (tmp_path / "worker-5.json").write_bytes(b"not json")
    assert _total(await me.render()) == 7
