"""`/metrics` of a multi-process server (`gatewise serve --workers N`): one scrape shows the
whole server, whichever worker answers it.

Each worker keeps its own registry (the hot path stays a dict update, no locks, no shared
memory) and writes a snapshot of it every `interval_s` to `worker-<slot>.json` in a run
directory the parent creates (written to a temporary name, then renamed: a reader never sees
half a file). The worker answering a scrape renders its own live registry merged with the
other workers' latest snapshots:

- counters and histograms (buckets, sums, counts) are summed per label set: the server's
  totals, as one process would have counted them;
- `gatewise_requests_in_flight` is summed (requests being served by the whole server);
- every other gauge takes the largest value per label set: they are readings of shared state
  (breaker states, budget totals, credential ages, health, the build), which every worker
  reports alike or, for a budget, the latest total it saw (the largest is the newest).

So a scrape can lag another worker's activity by at most `interval_s`. When a worker exits,
the parent deletes its snapshot (`remove_snapshot`): a restarted worker starts from zero, as a
restarted process would, and Prometheus reads the drop as a counter reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import msgspec

from gatewise.observability.metrics import Counter, GatewayMetrics, Gauge, Histogram

log = logging.getLogger("gatewise.metrics")

SUMMED_GAUGES = frozenset({"gatewise_requests_in_flight"})
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder()


def snapshot_path(run_dir: Path, slot: int) -> Path:
    return run_dir / f"worker-{slot}.json"


def remove_snapshot(run_dir: Path, slot: int) -> None:
    """The parent, when worker `slot` exited: its numbers leave the server's totals."""
    with contextlib.suppress(FileNotFoundError):
        snapshot_path(run_dir, slot).unlink()


def snapshot(metrics: GatewayMetrics) -> dict[str, list[Any]]:
    """Every series of every family: `[labels, value]`, or `[labels, counts, sum]`."""
    out: dict[str, list[Any]] = {}
    for m in metrics.families():
        if isinstance(m, Histogram):
            out[m.name] = [[list(k), list(c), s[0]] for k, (c, s) in m.series.items()]
        else:
            out[m.name] = [[list(k), v] for k, v in m.values.items()]
    return out


def merged(metrics: GatewayMetrics, peers: list[dict[str, list[Any]]]) -> str:
    """The exposition of `metrics` (collected now) with the peers' snapshots merged in."""
    metrics.collect()
    lines: list[str] = []
    for m in metrics.families():
        if isinstance(m, Histogram):
            h = Histogram(m.name, m.help, m.label_names, m.buckets, max_series=m.max_series)
            for k, (counts, total) in m.series.items():
                h.series[k] = (list(counts), [total[0]])
            for peer in peers:
                for labels, counts, total in peer.get(m.name, ()):
                    key = tuple(labels)
                    s = h.series.get(key)
                    if s is None:
                        h.series[key] = (list(counts), [float(total)])
                    elif len(s[0]) == len(counts):
                        s[0][:] = [a + b for a, b in zip(s[0], counts, strict=True)]
                        s[1][0] += float(total)
            lines.extend(h.render())
            continue
        out: Counter | Gauge = (Counter if isinstance(m, Counter) else Gauge)(
            m.name, m.help, m.label_names, max_series=m.max_series)
        out.values = dict(m.values)
        add = isinstance(m, Counter) or m.name in SUMMED_GAUGES
        for peer in peers:
            for labels, value in peer.get(m.name, ()):
                key = tuple(labels)
                if key not in out.values:
                    out.values[key] = float(value)
                elif add:
                    out.values[key] += float(value)
                else:
                    out.values[key] = max(out.values[key], float(value))
        lines.extend(out.render())
    return "\n".join(lines) + "\n"


class WorkerMetrics:
    """One worker's side: writes its snapshot periodically, renders the merged scrape."""

    def __init__(self, metrics: GatewayMetrics, run_dir: Path, slot: int, *,
                 interval_s: float = 1.0) -> None:
        self.metrics = metrics
        self.run_dir = run_dir
        self.slot = slot
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        # Each peer's last good snapshot, by file name (only `_peers`, one thread at a time).
        self._last: dict[str, dict[str, list[Any]]] = {}
        self._reading = asyncio.Lock()

    async def write(self) -> None:
        """Snapshot on the loop (the registry is only touched there), file I/O off it."""
        data = _encode(snapshot(self.metrics))
        await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        path = snapshot_path(self.run_dir, self.slot)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _peers(self) -> list[dict[str, list[Any]]]:
        """Every other worker's latest snapshot. A directory listing taken while a worker
        renames its new snapshot into place may miss that file (POSIX leaves readdir during a
        rename unspecified; it happened under load), and a scrape then dropped that worker's
        counts, so a counter seemed to go backwards. So a peer seen before is read by name
        even when the listing misses it, and kept until its file is gone (the parent
        deletes a dead worker's); a snapshot that cannot be read or decoded counts with
        its last good one."""
        own = snapshot_path(self.run_dir, self.slot).name
        names = {p.name for p in self.run_dir.glob("worker-*.json")}
        names.update(self._last)
        names.discard(own)
        out: list[dict[str, list[Any]]] = []
        for name in sorted(names):
            data: Any
            try:
                data = _decode.decode((self.run_dir / name).read_bytes())
            except FileNotFoundError:
                self._last.pop(name, None)  # its worker exited
                continue
            except (OSError, msgspec.DecodeError):
                data = self._last.get(name)
            if isinstance(data, dict):
                self._last[name] = data
                out.append(data)
        return out

    async def render(self) -> str:
        async with self._reading:
            peers = await asyncio.to_thread(self._peers)
        return merged(self.metrics, peers)

    async def _loop(self) -> None:
        while True:
            try:
                await self.write()
            except Exception as exc:  # a full disk must not stop the worker serving
                log.warning("writing the worker's metrics snapshot failed: %s",
                            type(exc).__name__)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
