"""The checks behind `/readyz`, built from a gateway's parts (`build_health`).

- **provider** (one per deployment): the cheapest call that spends nothing, the provider's
  model list (`validate_key`: `GET /models`, Ollama's `/api/tags`); a vault key is read
  without counting as a use. Never through the request chain, so never in the ledger, a
  budget or a rate limit. A LiteLLM-routed deployment (`litellm/<provider>/<model>`) is
  probed through the same seam: when gatewise speaks its provider's wire itself
  (`litellm/openai/...`, `litellm/groq/...`, `litellm/anthropic/...`) with that provider's
  model list, on the deployment's address and key (free, and LiteLLM is never imported for
  it); otherwise with the LiteLLM client's `validate_key`, a one-token completion (LiteLLM has
  no uniform free call: the cheapest it has, a token per probe interval, outside every
  budget), with the same backoff.
- **local_model** (an in-process llama.cpp deployment): up once its model is loaded, down
  when loading failed; asking never loads it and never generates.
- **store**: Redis `PING`, PostgreSQL `SELECT 1`, the SQLite state files. Redis and
  PostgreSQL are shared state: one down makes the replica not ready.
- **quota** (one per hard budget): degraded once exhausted, with its scope. A config budget
  for every subject (`subject: "*"`) is enforced per key, team or user, each against its own
  counter; its one component (`quota:<scope>:*:<period>`) looks at every subject the
  governance store knows (each live key, its team and its user, and the master key) and is
  degraded while any of them is exhausted, naming them (at most `_MAX_QUOTAS` subjects).
- **api**: the monitor's own (`monitor.py`).

Provider and quota checks start one interval after start-up (a short-lived process never
pays for them); stores and the local model are checked at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from gatewise.accounting.budgets import BudgetSource, budget_key, period_bounds
from gatewise.config.loader import ResolvedConfig
from gatewise.config.secrets import first_env
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
from gatewise.providers.base import Target
from gatewise.providers.deployment import Deployment
from gatewise.providers.pool import ProviderPool
from gatewise.providers.presets import find_preset
from gatewise.storage.base import BudgetRecord, CounterStore, GovernanceStore

if TYPE_CHECKING:
    from gatewise.config.schema import BudgetConfig
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


def litellm_native(target: Target, env: Mapping[str, str]) -> Target | None:
    """A LiteLLM-routed target (`model` = `<provider>/<model>`) as gatewise's own client
    would address that provider, when it speaks its wire with the standard URLs; None
    otherwise (then only LiteLLM can reach it)."""
    provider, _, model = target.model.partition("/")
    found = find_preset(provider) if model else None
    if found is None:
        return None
    name, preset = found
    api_base = target.api_base or first_env(preset.base_env, env) or preset.api_base
    if preset.in_process or preset.url_style != "standard" or not api_base:
        return None
    return dataclasses.replace(
        target, provider=name, wire=preset.wire, model=model, api_base=api_base,
        api_key=target.api_key or first_env(preset.key_env, env), auth=preset.auth)


def _store_check(ping: Callable[[], Awaitable[None]]) -> Check:
    async def check() -> Result:
        await ping()
        return Result(UP)

    return check


async def _subjects(governance: GovernanceStore, scope: str, now: float,
                    master: bool) -> list[str]:
    """Who a `*` budget applies to, as far as the governance store knows: the subjects of
    live keys (a key's id, team or user; the master key's id is `master`)."""
    live = [k for k in await governance.list_keys()
            if k.revoked is None and (k.expires is None or k.expires > now)]
    if scope == "key":
        found = [*(["master"] if master else []), *(k.id for k in live)]
    else:
        found = [s for k in live if (s := k.team if scope == "team" else k.user)]
    return sorted(set(found))[:_MAX_QUOTAS]


def _expand(wildcards: Sequence[tuple[str, BudgetConfig]], governance: GovernanceStore,
            now: float, master: bool) -> Awaitable[list[list[BudgetRecord]]]:
    """Each `*` budget as the per-subject budgets enforcement applies."""
    async def one(budget_id: str, b: BudgetConfig) -> list[BudgetRecord]:
        return [BudgetRecord(budget_id, b.scope, s, b.period, b.limit_usd, b.limit_tokens,
                             b.hard)
                for s in await _subjects(governance, b.scope, now, master)]

    return asyncio.gather(*(one(i, b) for i, b in wildcards))


def _quota_check(budgets: BudgetSource, counters: CounterStore,
                 wall: Callable[[], float], *,
                 wildcards: Sequence[tuple[str, BudgetConfig]] = (),
                 governance: GovernanceStore | None = None, master: bool = False) -> Check:
    async def check() -> dict[str, Result]:
        now = wall()
        hard = [r for r in await budgets.records() if r.hard][:_MAX_QUOTAS]
        per_subject = (await _expand(wildcards, governance, now, master)
                       if governance is not None and wildcards else [])
        every = [r for rs in per_subject for r in rs]
        wanted = [(r, unit, float(limit)) for r in [*hard, *every]
                  for unit, limit in (("usd", r.limit_usd), ("tokens", r.limit_tokens))
                  if limit is not None]
        spent = await asyncio.gather(*(
            counters.value(budget_key(r.scope, r.subject, r.period,
                                      period_bounds(r.period, now)[0], unit))
            for r, unit, _ in wanted))
        out: dict[str, Result] = {}
        exhausted: dict[tuple[str, str], list[str]] = {}
        names: dict[str, str] = {}
        for r in hard:
            name = f"quota:{r.scope}:{r.subject}:{r.period}"
            names[r.id] = f"{name}:{r.id}" if name in names.values() else name
        for (r, unit, limit), used in zip(wanted, spent, strict=True):
            if used >= limit:
                exhausted.setdefault((r.id, r.subject), []).append(unit)
        for r in hard:
            units = exhausted.get((r.id, r.subject))
            detail = {"scope": r.scope, "subject": r.subject, "period": r.period}
            out[names[r.id]] = (Result(DEGRADED, "exhausted: " + ",".join(units), detail)
                                if units else Result(UP, None, detail))
        for (budget_id, b), records in zip(wildcards, per_subject or [[]] * len(wildcards),
                                           strict=True):
            name = f"quota:{b.scope}:*:{b.period}"
            if name in out:
                name = f"{name}:{budget_id}"
            out_of = [r.subject for r in records if (budget_id, r.subject) in exhausted]
            info = {"scope": b.scope, "subject": "*", "period": b.period,
                    "subjects": len(records), "exhausted": out_of}
            out[name] = (Result(DEGRADED, f"exhausted: {len(out_of)} of {len(records)}",
                                info) if out_of else Result(UP, None, info))
        return out

    return check


def _kind(dep: Deployment) -> str:
    return "local_model" if dep.target.wire == "llamacpp" else "provider"


def build_health(config: ResolvedConfig, *, pool: ProviderPool, stores: Stores,
                 metrics: GatewayMetrics | None = None, budgets: BudgetSource | None = None,
                 credential: Callable[[str], Awaitable[str]] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> HealthMonitor:
    """The monitor with a probe per component. `credential` reads a vault key without
    counting a use. Nothing runs until `start()`."""
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
                native = litellm_native(dep.target, config.env)
                probe = "model_list" if native is not None else "completion"
                via = dataclasses.replace(dep, target=native) if native is not None else dep
                monitor.add(Probe(dep.id, kind, _provider_check(via, pool, credential),
                                  hc.probe_interval_s, hc.max_backoff_s, hc.probe_timeout_s,
                                  {**detail, "probe": probe, "via": "litellm"}))
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
        wildcards = [(f"config:{i}", b) for i, b in
                     enumerate(config.config.accounting.budgets) if b.subject == "*" and b.hard]
        monitor.add(Probe("quotas", "quota", _quota_check(
            budgets, stores.counters, wall, wildcards=wildcards, governance=stores.governance,
            master=config.master_key is not None),
            hc.store_interval_s, store_cap, hc.probe_timeout_s))
    return monitor
