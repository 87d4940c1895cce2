"""Is an alias answering worse than it used to? Two maintenance jobs over the quality store.

`quality_check` (`DegradationCheck`) compares, per alias and metric, the mean score over the
last `quality.window_s` with the alias's own baseline: the mean over the `quality.baseline_s`
before that window. Against its own past, because "good" differs by model and task: a code
model's validity and a chat model's groundedness live at different levels, and only a drop
says something went wrong (a provider silently swapped a model, a prompt change, a
degraded upstream). Both sides need `quality.min_samples` scores, so a quiet hour is not
an alert; the drop is absolute on the 0..1 scale and degraded means larger than
`quality.degradation_drop`. Each run sets `gatewise_quality_score_mean`,
`gatewise_quality_score_baseline` and `gatewise_quality_degraded` (which the Prometheus rule
alerts on, so every replica's scrape agrees whichever replica ran the job) and logs a warning
when an alias/metric becomes degraded (and an info line when it recovers).

`quality_retention` (`QualityRetention`) removes rows and their feedback older than
`quality.retention_days`, in bounded batches.

The store is read with two queries (window, baseline), each capped at `max_rows` rows: the
store protocol has no aggregate, and the cap bounds one run's memory on a busy gateway
(a capped baseline is then the older part of its span, which is still the alias's own past).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from gatewise.config.schema_ops import QualityConfig
from gatewise.observability.metrics import GatewayMetrics
from gatewise.quality.middleware import OTHER
from gatewise.storage.quality import QualityFilter, QualityRecord, QualityStore

log = logging.getLogger("gatewise.quality")

Key = tuple[str, str]  # (alias label, metric)


def means(rows: list[QualityRecord], label: Callable[[str], str]) -> dict[Key, tuple[float, int]]:
    """(mean, count) per (alias label, metric) over the rows' scores."""
    sums: dict[Key, list[float]] = {}
    for r in rows:
        if not r.scores:
            continue
        alias = label(r.alias)
        for metric, value in r.scores.items():
            acc = sums.get((alias, metric))
            if acc is None:
                sums[(alias, metric)] = [value, 1.0]
            else:
                acc[0] += value
                acc[1] += 1.0
    return {k: (s / n, int(n)) for k, (s, n) in sums.items()}


class DegradationCheck:
    name = "quality_check"
    default_interval_s = 300.0

    def __init__(self, store: QualityStore, config: QualityConfig, metrics: GatewayMetrics, *,
                 known_aliases: Collection[str], clock: Callable[[], float] = time.time,
                 max_rows: int = 100_000) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics
        self.known_aliases = frozenset(known_aliases)
        self.clock = clock
        self.max_rows = max_rows
        self.degraded: set[Key] = set()
        self._shown: set[Key] = set()

    def _label(self, alias: str) -> str:
        return alias if alias in self.known_aliases else OTHER

    async def run(self) -> dict[str, Any]:
        c = self.config
        now = self.clock()
        start = now - c.window_s
        window = means(await self.store.query(QualityFilter(since=start, until=now),
                                              limit=self.max_rows), self._label)
        baseline = means(await self.store.query(
            QualityFilter(since=start - c.baseline_s, until=start), limit=self.max_rows),
            self._label)
        m = self.metrics
        shown: set[Key] = set()
        degraded: set[Key] = set()
        for key in window.keys() | baseline.keys():
            mean, n = window.get(key, (0.0, 0))
            base, nb = baseline.get(key, (0.0, 0))
            if n < c.min_samples and nb < c.min_samples:
                continue
            shown.add(key)
            if n >= c.min_samples:
                m.quality_mean.set(key, round(mean, 6))
            else:
                m.quality_mean.remove(key)
            if nb >= c.min_samples:
                m.quality_baseline.set(key, round(base, 6))
            else:
                m.quality_baseline.remove(key)
            bad = n >= c.min_samples and nb >= c.min_samples and base - mean > c.degradation_drop
            m.quality_degraded.set(key, 1.0 if bad else 0.0)
            if bad:
                degraded.add(key)
                if key not in self.degraded:
                    log.warning("quality degraded: alias %s, %s mean %.3f over the last %gs "
                                "against its baseline %.3f (drop > %.2f; %d and %d samples)",
                                key[0], key[1], mean, c.window_s, base, c.degradation_drop,
                                n, nb)
            elif key in self.degraded:
                log.info("quality recovered: alias %s, %s mean %.3f (baseline %.3f)",
                         key[0], key[1], mean, base)
        for key in self._shown - shown:  # no longer enough samples on either side
            m.quality_mean.remove(key)
            m.quality_baseline.remove(key)
            m.quality_degraded.remove(key)
        self._shown = shown
        self.degraded = degraded
        return {"series": len(shown),
                "degraded": sorted(f"{a}/{metric}" for a, metric in degraded)}


class QualityRetention:
    name = "quality_retention"
    default_interval_s = 3600.0

    def __init__(self, store: QualityStore, retention_days: int, *,
                 clock: Callable[[], float] = time.time, batch: int = 5000) -> None:
        self.store = store
        self.retention_days = retention_days
        self.clock = clock
        self.batch = batch

    async def run(self) -> dict[str, Any]:
        cutoff = self.clock() - self.retention_days * 86400.0
        deleted = 0
        while True:
            n = await self.store.delete_before(cutoff, self.batch)
            deleted += n
            if n < self.batch:
                return {"deleted": deleted}
