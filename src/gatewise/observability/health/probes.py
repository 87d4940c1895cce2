"""The checks behind `/readyz`, built from a gateway's parts (`build_health`).

- **provider** (one per deployment): the cheapest call that spends nothing, the provider's
  model list (`validate_key`: `GET /models`, Ollama's `/api/tags`); a vault key is read
  without counting as a use. Never through the request chain, so never in the ledger, a
  budget or a rate limit. LiteLLM has no free call (its key check is a one-token completion),
  so its deployments are watched passively: down while their circuit breaker is open,
  unknown otherwise.
- **local_model** (an in-process llama.cpp deployment): up once its model is loaded, down
  when loading failed; asking never loads it and never generates.
- **store**: Redis `PING`, PostgreSQL `SELECT 1`, the SQLite state files. Redis and
  PostgreSQL are shared state: one down makes the replica not ready.
- **quota** (one per hard budget naming a subject): degraded once exhausted, with its scope.
- **api**: the monitor's own (`monitor.py`).

Provider and quota checks start one interval after start-up (a short-lived process never
pays for them); stores and the local model are checked at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

from gatewise.accounting.budgets import BudgetSource, budget_key, period_bounds
from gatewise.config.loader import ResolvedConfig
from gatewise.observability.health.monitor import (
    DEGRADED,
    DOWN,
    UNKNOWN,
    UP,
    Check,
    HealthMonitor,
    Probe,
    Result,
)
from gatewise.observability.metrics import GatewayMetrics
from gatewise.providers.deployment import Deployment
from gatewise.providers.pool import ProviderPool
from gatewise.storage.base import CounterStore
from gatewise.storage.factory import Stores

# Shared stores: the replica cannot do its job without them.
_CRITICAL_STORES = ("redis", "postgres")
# Budgets looked at per quota check (the rest are not reported).
_MAX_QUOTAS = 200


def _provider_check(dep: Deployment, pool: ProviderPool,
                    credential: Callable[[str], Awaitable[str]] | None) -> Check:
    async def check() -> Result:
        target = dep.target
        if dep.credential is not None:
            if credential is None:
                return Result(DOWN, "NotConfiguredError")
            target = dataclasses.replace(target, api_key=await credential(dep.credential))
        await pool.client_for(target).validate_key(target)
        return Result(UP)

    return check


def _local_check(dep: Deployment, pool: ProviderPool) -> Check:
    async def check() -> Result:
        state = getattr(pool.client_for(dep.target), "model_state", None)
        if state is None:
            return Result(UNKNOWN)
        found: str = state(dep.target)
        if found == "loaded":
            return Result(UP)
        if found.startswith("failed:"):
            return Result(DOWN, found.partition(":")[2] or "LoadError")
        return Result(UNKNOWN, detail={"loaded": False})

    return check


def _passive_check(dep: Deployment, available: Callable[[str], bool] | None) -> Check:
    async def check() -> Result:
        if available is not None and not available(dep.id):
            return Result(DOWN, "CircuitOpenError")
        return Result(UNKNOWN)

    return check


def _store_check(ping: Callable[[], Awaitable[None]]) -> Check:
    async def check() -> Result:
        await ping()
        return Result(UP)

    return check


def _quota_check(budgets: BudgetSource, counters: CounterStore,
                 wall: Callable[[], float]) -> Check:
    async def check() -> dict[str, Result]:
        now = wall()
        hard = [r for r in await budgets.records() if r.hard][:_MAX_QUOTAS]
        wanted = [(r, unit, float(limit)) for r in hard
                  for unit, limit in (("usd", r.limit_usd), ("tokens", r.limit_tokens))
                  if limit is not None]
        spent = await asyncio.gather(*(
            counters.value(budget_key(r.scope, r.subject, r.period,
                                      period_bounds(r.period, now)[0], unit))
            for r, unit, _ in wanted))
        out: dict[str, Result] = {}
        exhausted: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for r in hard:
            name = f"quota:{r.scope}:{r.subject}:{r.period}"
            names[r.id] = f"{name}:{r.id}" if name in names.values() else name
        for (r, unit, limit), used in zip(wanted, spent, strict=True):
            if used >= limit:
                exhausted.setdefault(r.id, []).append(unit)
        for r in hard:
            units = exhausted.get(r.id)
            detail = {"scope": r.scope, "subject": r.subject, "period": r.period}
            out[names[r.id]] = (Result(DEGRADED, "exhausted: " + ",".join(units), detail)
                                if units else Result(UP, None, detail))
        return out

    return check


def _kind(dep: Deployment) -> str:
    return "local_model" if dep.target.wire == "llamacpp" else "provider"


def build_health(config: ResolvedConfig, *, pool: ProviderPool, stores: Stores,
                 metrics: GatewayMetrics | None = None, budgets: BudgetSource | None = None,
                 credential: Callable[[str], Awaitable[str]] | None = None,
                 available: Callable[[str], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> HealthMonitor:
    """The monitor with a probe per component. `credential` reads a vault key without
    counting a use; `available` is the circuit breakers' verdict per deployment id (the only
    signal for providers that have no free call). Nothing runs until `start()`."""
    hc = config.config.health
    monitor = HealthMonitor(hc, metrics=metrics, clock=clock, wall=wall, sleep=sleep)
    seen: set[str] = set()
    for alias, deps in config.aliases.items():
        monitor.aliases[alias] = [d.id for d in deps]
        for dep in deps:
            if dep.id in seen:
                continue
            seen.add(dep.id)
            kind = _kind(dep)
            detail = {"alias": dep.alias}
            if dep.problem:
                monitor.set_static(dep.id, kind, Result(DOWN, dep.problem), detail)
                continue
            if kind == "local_model":
                monitor.add(Probe(dep.id, kind, _local_check(dep, pool), hc.probe_interval_s,
                                  hc.probe_interval_s, hc.probe_timeout_s,
                                  {**detail, "probe": "loaded"}), first_in=0.0)
            elif not hc.probe_providers:
                monitor.set_static(dep.id, kind, Result(UNKNOWN), {**detail, "probe": "off"})
            elif dep.target.wire == "litellm":
                monitor.add(Probe(dep.id, kind, _passive_check(dep, available),
                                  hc.probe_interval_s, hc.probe_interval_s, hc.probe_timeout_s,
                                  {**detail, "probe": "passive"}))
            else:
                monitor.add(Probe(dep.id, kind, _provider_check(dep, pool, credential),
                                  hc.probe_interval_s, hc.max_backoff_s, hc.probe_timeout_s,
                                  {**detail, "probe": "model_list"}))
    # A store that comes back must be seen soon (it gates readiness): shorter backoff.
    store_cap = min(hc.max_backoff_s, 4 * hc.store_interval_s)
    for name, ping in stores.probes.items():
        monitor.add(Probe(name, "store", _store_check(ping), hc.store_interval_s, store_cap,
                          hc.probe_timeout_s), first_in=0.0)
        if name in _CRITICAL_STORES:
            monitor.critical.add(name)
    if budgets is not None and not budgets.empty:
        monitor.add(Probe("quotas", "quota", _quota_check(budgets, stores.counters, wall),
                          hc.store_interval_s, store_cap, hc.probe_timeout_s))
    return monitor
