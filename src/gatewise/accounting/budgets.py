"""Budgets: reserve the worst case before a request, settle to the real cost after.

`CounterStore.reserve` is all-or-nothing under concurrency, so any number of requests racing
for the last dollar cannot overspend by more than what one request settles above its estimate
(the worst case is an upper bound, so normally not at all). Soft budgets reserve against no
limit: they only count and alert.

Counter keys: `budget:{scope}:{subject}:{period}:{period_start}:{usd|tokens}` (`budget_key`),
alive until a day after the period ends. Alert dedupe keys: `alert:` + the same + `:{threshold}`,
claimed with `reserve(…, 1, limit=1)` so only one replica fires each alert.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gatewise.accounting.alerts import SpendAlert, SpendAlerts
from gatewise.accounting.usage import (
    Prices,
    TokenCounting,
    collect_stream_text,
    cost_of,
    ensure_usage,
    is_cache_hit,
    output_limit,
    prompt_estimate,
)
from gatewise.errors import BudgetExceededError, BudgetStoreUnavailable
from gatewise.pipeline.background import BackgroundTasks
from gatewise.pipeline.core import Call, Handler, Identity
from gatewise.pipeline.stream import ChunkStream
from gatewise.storage.base import BudgetRecord, CounterStore, Reservation

if TYPE_CHECKING:
    from gatewise.config.schema import BudgetConfig
    from gatewise.observability.metrics import Gauge
    from gatewise.providers.deployment import Deployment

log = logging.getLogger("gatewise.accounting")

_DAY = 86400.0
_FIRED_CAP = 10_000


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget as applied to one subject (a `*` config budget becomes one per subject)."""

    id: str
    scope: str
    subject: str
    period: str
    limit_usd: float | None
    limit_tokens: int | None
    hard: bool


def period_bounds(period: str, now: float) -> tuple[float, float | None]:
    """(start, end) in unix seconds, UTC; `total` is (0, None)."""
    if period == "total":
        return 0.0, None
    t = time.gmtime(now)
    if period == "day":
        start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
        return float(start), float(start) + _DAY
    start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(start), float(calendar.timegm((year, month, 1, 0, 0, 0)))


def budget_key(scope: str, subject: str, period: str, period_start: float, unit: str) -> str:
    """The counter holding a budget's spend in one period (the admin API reads the same key)."""
    return f"budget:{scope}:{subject}:{period}:{int(period_start)}:{unit}"


def _subject(identity: Identity, scope: str) -> str | None:
    if scope == "key":
        return identity.key_id
    if scope == "team":
        return identity.team
    return identity.user


class BudgetSource:
    """The budgets applying to an identity: config budgets (`subject: "*"` = each subject
    separately) plus records from the governance store, re-read at most every `ttl_s`.

    When the store cannot be read, the last good records are kept; with none yet, the error
    propagates (the middleware then fails closed or open)."""

    def __init__(self, config_budgets: Sequence[BudgetConfig],
                 loader: Callable[[], Awaitable[list[BudgetRecord]]] | None = None, *,
                 ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = list(config_budgets)
        self._loader = loader
        self.ttl_s = ttl_s
        self._clock = clock
        self._records: dict[tuple[str, str], list[BudgetRecord]] | None = None
        self._loaded_at = -math.inf
        self._refreshing: asyncio.Future[None] | None = None

    @property
    def empty(self) -> bool:
        """No budget can apply to anyone (lets the middleware step aside at no cost)."""
        return not self._config and self._loader is None

    async def for_identity(self, identity: Identity) -> list[Budget]:
        out: list[Budget] = []
        for i, b in enumerate(self._config):
            subject = _subject(identity, b.scope)
            if subject is None or (b.subject != "*" and b.subject != subject):
                continue
            out.append(Budget(f"config:{i}", b.scope, subject, b.period, b.limit_usd,
                              b.limit_tokens, b.hard))
        if self._loader is not None:
            records = await self._current_records()
            for scope in ("key", "team", "user"):
                subject = _subject(identity, scope)
                if subject is None:
                    continue
                for r in records.get((scope, subject), ()):
                    out.append(Budget(r.id, r.scope, r.subject, r.period, r.limit_usd,
                                      r.limit_tokens, r.hard))
        return out

    def invalidate(self) -> None:
        """A budget was created or deleted here: re-read on the next request (other replicas
        see it within `ttl_s`)."""
        self._loaded_at = -math.inf

    async def records(self) -> list[BudgetRecord]:
        """Every budget naming one subject: the stored ones (from the same cache requests
        read, re-read at most every `ttl_s`) and config budgets that are not `*` (those
        apply to subjects nobody lists). What health checks report exhausted quotas from."""
        out = [BudgetRecord(f"config:{i}", b.scope, b.subject, b.period, b.limit_usd,
                            b.limit_tokens, b.hard)
               for i, b in enumerate(self._config) if b.subject != "*"]
        if self._loader is not None:
            out += [r for rs in (await self._current_records()).values() for r in rs]
        return out

    async def spent(self, counters: CounterStore, budget: BudgetRecord,
                    now: float | None = None) -> dict[str, float]:
        """This period's spend of one stored budget, per unit (what the admin API shows)."""
        start, _ = period_bounds(budget.period, time.time() if now is None else now)
        out: dict[str, float] = {}
        for unit, limit in (("usd", budget.limit_usd), ("tokens", budget.limit_tokens)):
            if limit is not None:
                out[unit] = await counters.value(
                    budget_key(budget.scope, budget.subject, budget.period, start, unit))
        return out

    async def _current_records(self) -> dict[tuple[str, str], list[BudgetRecord]]:
        if self._records is not None and self._clock() - self._loaded_at < self.ttl_s:
            return self._records
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh())
        fut = self._refreshing
        try:
            await asyncio.shield(fut)
        except Exception:
            if self._records is None:
                raise
        return self._records if self._records is not None else {}

    async def _refresh(self) -> None:
        assert self._loader is not None
        try:
            records = await self._loader()
        except Exception as exc:
            log.warning("budget records could not be loaded (%s)", type(exc).__name__)
            self._loaded_at = self._clock() - self.ttl_s / 2  # retry soon, not every request
            raise
        finally:
            self._refreshing = None
        index: dict[tuple[str, str], list[BudgetRecord]] = {}
        for r in records:
            index.setdefault((r.scope, r.subject), []).append(r)
        self._records, self._loaded_at = index, self._clock()


@dataclass(slots=True)
class _Held:
    budget: Budget
    unit: str            # usd | tokens
    limit: float
    period_start: float
    ttl: float | None
    reservation: Reservation


class BudgetMiddleware:
    def __init__(self, counters: CounterStore, budgets: BudgetSource, prices: Prices,
                 tokenizers: TokenCounting, aliases: Mapping[str, list[Deployment]], *,
                 default_max_tokens: int = 4096, fail_closed: bool = True,
                 alerts: SpendAlerts | None = None, thresholds: Sequence[float] = (0.5, 0.8, 1.0),
                 clock: Callable[[], float] = time.time,
                 settle_in_background: bool = False) -> None:
        """`settle_in_background`: for a counter store across the network (Redis,
        PostgreSQL), settle after the answer instead of before it."""
        self.counters = counters
        self.budgets = budgets
        self.prices = prices
        self.tokenizers = tokenizers
        self.aliases = aliases
        self.default_max_tokens = default_max_tokens
        self.fail_closed = fail_closed
        self.alerts = alerts
        self.thresholds = sorted(thresholds)
        self.clock = clock
        self._fired: set[str] = set()
        # (scope, subject, period, unit) -> (period start, limit, spend after the last settle
        # here): what `gauges` exports, with no store read at scrape time.
        self._spend: dict[tuple[str, str, str, str], tuple[float, float, float]] = {}
        self._background = BackgroundTasks("settling a budget")
        self._periods: dict[str, tuple[float, float | None]] = {}  # period -> current bounds
        self.settle_in_background = settle_in_background

    async def __call__(self, call: Call, next: Handler) -> Any:
        if self.budgets.empty:
            return await next(call)
        try:
            budgets = await self.budgets.for_identity(call.identity)
        except Exception as exc:
            self._unavailable(exc)
            return await next(call)
        if not budgets:
            return await next(call)
        held = await self._reserve(call, budgets)
        try:
            result = await next(call)
        except BaseException:
            await self._release(held)
            raise
        if isinstance(result, ChunkStream):
            collect_stream_text(result)
            result.on_finish(lambda c, error: self._background.spawn(
                self._stream_done(c, result, held, error)))
            return result
        if self.settle_in_background:
            # Off the answer's path: the caller does not wait for a second round trip to the
            # counter store (until it lands, the reservation's worst case stands: never under).
            self._background.spawn(self._settle(call, held))
        else:
            await self._settle(call, held)  # in memory: cheaper than a task
        return result

    # -- before -------------------------------------------------------------------------------

    def _worst_case(self, call: Call) -> tuple[float, int]:
        deps = self.aliases.get(call.alias) or (
            [call.deployment] if call.deployment is not None else [])
        prompt = prompt_estimate(call, self.tokenizers, deps[0].target if deps else None)
        out = output_limit(call, self.default_max_tokens)
        usd = 0.0
        for dep in deps:
            price = self.prices.for_deployment(dep)
            if price is not None:
                usd = max(usd, self.prices.worst_case(prompt, out, price))
        return usd, prompt + out

    async def _reserve(self, call: Call, budgets: list[Budget]) -> list[_Held]:
        """Reserves on every applicable budget at once (one round trip of latency, not one per
        budget); all or nothing: if any refuses or fails, the others are released."""
        usd, tokens = self._worst_case(call)
        now = self.clock()
        wanted: list[tuple[Budget, str, float, float, float | None, str, float]] = []
        for b in budgets:
            start, end = self._bounds(b.period, now)
            ttl = None if end is None else end - now + _DAY
            for unit, limit, amount in (("usd", b.limit_usd, usd), ("tokens", b.limit_tokens, tokens)):
                if limit is not None:
                    wanted.append((b, unit, float(limit), start, ttl,
                                   budget_key(b.scope, b.subject, b.period, start, unit),
                                   float(amount)))
        reserves = [self.counters.reserve(key, amount, limit if b.hard else math.inf, ttl)
                    for b, _, limit, _, ttl, key, amount in wanted]
        outcomes: list[Reservation | BaseException | None]
        if len(reserves) == 1:  # the common case: no tasks, no extra trip through the loop
            try:
                outcomes = [await reserves[0]]
            except Exception as exc:
                outcomes = [exc]
        else:
            outcomes = await asyncio.gather(*reserves, return_exceptions=True)
        held = [_Held(b, unit, limit, start, ttl, res)
                for (b, unit, limit, start, ttl, _, _), res in zip(wanted, outcomes, strict=True)
                if isinstance(res, Reservation)]
        if len(held) == len(wanted):
            return held
        await self._release(held)
        for _, res in zip(wanted, outcomes, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, Exception):
                    raise res
                self._unavailable(res)
                return []
        b, unit, limit, *_ = next(w for w, r in zip(wanted, outcomes, strict=True) if r is None)
        call.event("budget_exceeded", scope=b.scope, period=b.period, unit=unit)
        shown = f"${limit:.2f}" if unit == "usd" else f"{int(limit)} tokens"
        raise BudgetExceededError(
            f"Budget exceeded: the {b.scope} {b.period} budget of {shown} does not cover this "
            "request")

    def _bounds(self, period: str, now: float) -> tuple[float, float | None]:
        """`period_bounds`, worked out once per period rather than per request (`calendar`
        costs microseconds every time)."""
        got = self._periods.get(period)
        if got is None or now < got[0] or (got[1] is not None and now >= got[1]):
            got = self._periods[period] = period_bounds(period, now)
        return got

    def _unavailable(self, exc: Exception) -> None:
        """Fail closed (raise) or open (log and serve unmetered)."""
        if self.fail_closed:
            log.error("budget store unavailable (%s); refusing", type(exc).__name__)
            raise BudgetStoreUnavailable(
                "Budgets cannot be checked right now; try again shortly") from exc
        log.warning("budget store unavailable (%s); serving unmetered", type(exc).__name__)

    # -- after --------------------------------------------------------------------------------

    async def _release(self, held: list[_Held]) -> None:
        for h in held:
            try:
                await self.counters.release(h.reservation)
            except Exception as exc:
                log.warning("budget release failed (%s)", type(exc).__name__)

    async def _stream_done(self, call: Call, stream: ChunkStream, held: list[_Held],
                           error: BaseException | None) -> None:
        ensure_usage(call, stream, self.tokenizers)
        if error is not None and call.usage is None:
            await self._release(held)
            return
        # A stream that failed or was abandoned midway still consumed what it generated:
        # settle to that (the ledger records it too) rather than pretend it was free.
        await self._settle(call, held)

    async def _settle(self, call: Call, held: list[_Held]) -> None:
        usage = call.usage
        cost = cost_of(call, self.prices) or 0.0
        tokens = 0 if usage is None or is_cache_hit(call) else usage.prompt_tokens + usage.completion_tokens
        for h in held:
            actual = cost if h.unit == "usd" else float(tokens)
            try:
                total = await self.counters.settle(h.reservation, actual)
            except Exception as exc:
                log.warning("budget settle failed (%s)", type(exc).__name__)
                continue
            self._note(h, total)
            if self.alerts is not None and h.limit > 0:
                await self._check_thresholds(h, total)

    async def _check_thresholds(self, h: _Held, total: float) -> None:
        assert self.alerts is not None
        b = h.budget
        for t in self.thresholds:
            if total < t * h.limit:
                break
            key = f"alert:{budget_key(b.scope, b.subject, b.period, h.period_start, h.unit)}:{t:g}"
            if key in self._fired:
                continue
            try:
                claimed = await self.counters.reserve(key, 1.0, 1.0, h.ttl)
            except Exception as exc:
                log.warning("spend alert dedupe failed (%s)", type(exc).__name__)
                return
            if len(self._fired) >= _FIRED_CAP:
                self._fired.clear()
            self._fired.add(key)
            if claimed is not None:
                self.alerts.crossed(SpendAlert(b.id, b.scope, b.subject, b.period,
                                               h.period_start, h.unit, t, total, h.limit, b.hard))

    def _note(self, h: _Held, total: float) -> None:
        b = h.budget
        key = (b.scope, b.subject, b.period, h.unit)
        if key not in self._spend and len(self._spend) >= _FIRED_CAP:
            self._spend.clear()
        self._spend[key] = (h.period_start, h.limit, total)

    def gauges(self, remaining: Gauge, used_ratio: Gauge) -> Callable[[], None]:
        """A scrape-time collector for `gatewise_budget_remaining_usd` and
        `gatewise_budget_used_ratio`, labelled (scope, subject, period).

        Reads only this process's memory: the total the shared counter returned at the last
        settle here (so with several replicas each reports the latest total it saw; take the
        max across them), reset to nothing spent once the period has rolled over. A budget
        this process has not settled against yet is not exported. The ratio is the USD one,
        or the token one for a budget with only a token limit."""

        def collect() -> None:
            remaining.clear()
            used_ratio.clear()
            now = self.clock()
            token_only: list[tuple[tuple[str, str, str], float]] = []
            for (scope, subject, period, unit), (start, limit, total) in self._spend.items():
                spent = total if period_bounds(period, now)[0] == start else 0.0
                ratio = spent / limit if limit > 0 else float(spent > 0)
                labels = (scope, subject, period)
                if unit == "usd":
                    remaining.set(labels, max(0.0, limit - spent))
                    used_ratio.set(labels, ratio)
                else:
                    token_only.append((labels, ratio))
            for labels, ratio in token_only:
                if labels not in used_ratio.values:
                    used_ratio.set(labels, ratio)

        return collect

    async def drain(self) -> None:
        """Waits for settlements still running (tests, shutdown)."""
        await self._background.drain()
