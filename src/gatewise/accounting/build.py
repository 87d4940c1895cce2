"""Config → accounting: prices, tokenizers, the usage ledger and its journal, spend alerts,
budgets and rate limits, with their middleware.

Built once per gateway (`gateway.py`) or per admin command (`cli/admin.py`) over the stores
they share with security. Nothing here touches the network or the disk at construction: the
stores connect on first use, and `start()` (server start-up, or the library's first call)
replays a dead process's ledger journal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gatewise.accounting.alerts import SpendAlerts
from gatewise.accounting.budgets import BudgetMiddleware, BudgetSource
from gatewise.accounting.journal import Journal
from gatewise.accounting.ledger import UsageLedger
from gatewise.accounting.middleware import AccountingMiddleware
from gatewise.accounting.prices import PriceTable
from gatewise.accounting.ratelimit import DeploymentLimitMiddleware, RateLimitMiddleware
from gatewise.accounting.tokenizers import Tokenizers
from gatewise.config.loader import ResolvedConfig
from gatewise.pipeline.core import Middleware
from gatewise.storage.base import BudgetRecord, UsageGroup, UsageRecord, UsageRow
from gatewise.storage.factory import Stores

if TYPE_CHECKING:
    from gatewise.observability.metrics import GatewayMetrics
    from gatewise.transport.base import Transport

log = logging.getLogger("gatewise.accounting")


class Accounting:
    """The accounting parts of one gateway, its middleware by stage, and what must be started
    and closed with them."""

    def __init__(self, config: ResolvedConfig, stores: Stores, *,
                 metrics: GatewayMetrics | None = None,
                 transport: Transport | None = None) -> None:
        acc = config.config.accounting
        self._stores = stores
        self.prices = PriceTable.load(acc.prices)
        self.tokenizers = Tokenizers()
        self.journal: Journal | None = None
        if config.config.storage.database != "memory":
            self.journal = Journal(Path(config.state_dir) / "journal")
        self.ledger = UsageLedger(stores.ledger, self.journal, batch=acc.ledger_batch,
                                  flush_s=acc.ledger_flush_s)
        self.alerts = SpendAlerts(acc.alert_webhook, transport,
                                  metrics_counter=metrics.budget_alerts if metrics else None)
        self.budgets = BudgetSource(acc.budgets, stores.governance.list_budgets)
        # Once per call, right after telemetry: the ledger sees every outcome, blocked ones
        # too.
        self.per_call: list[Middleware] = []
        if acc.enabled:
            self.per_call.append(AccountingMiddleware(
                self.ledger, self.prices, self.tokenizers,
                metrics=metrics.cost if metrics else None))
        # Behind access control, for identified callers only: rate limits, then budget
        # reservations.
        rejections = metrics.rate_limited if metrics else None
        self._rate_limits = RateLimitMiddleware(stores.windows, tokenizers=self.tokenizers,
                                                aliases=config.aliases, rejections=rejections)
        self.per_identity: list[Middleware] = [self._rate_limits]
        self._budget_guard: BudgetMiddleware | None = None
        if acc.enabled:
            self._budget_guard = BudgetMiddleware(
                stores.counters, self.budgets, self.prices, self.tokenizers, config.aliases,
                default_max_tokens=acc.default_max_tokens, fail_closed=acc.fail_closed,
                alerts=self.alerts, thresholds=tuple(acc.alert_thresholds),
                settle_in_background=stores.counters_kind in ("redis", "postgres"))
            self.per_identity.append(self._budget_guard)
            if metrics is not None:  # remaining amounts, from this process's last settles
                metrics.add_collector(self._budget_guard.gauges(metrics.budget_remaining,
                                                                metrics.budget_used_ratio))
        # Per attempt, outside retries: a full deployment (RPM/TPM) moves the router on.
        self.per_attempt: list[Middleware] = []
        if any(d.rpm or d.tpm for deps in config.aliases.values() for d in deps):
            self.per_attempt.append(DeploymentLimitMiddleware(
                stores.windows, tokenizers=self.tokenizers, rejections=rejections))

    async def spent(self, budget: BudgetRecord) -> dict[str, float]:
        """This period's spend of one stored budget, per unit."""
        return await self.budgets.spent(self._stores.counters, budget)

    async def usage(self, group_by: Sequence[UsageGroup], *, since: float | None,
                    until: float | None, team: str | None,
                    key_id: str | None) -> list[UsageRow]:
        """Usage summed per group, this process's pending records included."""
        await self.ledger.flush()
        return await self._stores.ledger.aggregate(group_by, since=since, until=until,
                                                   team=team, key_id=key_id)

    async def usage_records(self, *, since: float | None, until: float | None, limit: int,
                            team: str | None, key_id: str | None) -> list[UsageRecord]:
        """The ledger's records, oldest first, this process's pending ones included."""
        await self.ledger.flush()
        return await self._stores.ledger.query(since=since, until=until, limit=limit,
                                               team=team, key_id=key_id)

    async def start(self) -> None:
        """Replays journals left by crashed processes and starts the ledger flusher."""
        if self.journal is not None:
            replayed = await self.journal.replay(self._stores.ledger)
            if replayed:
                log.warning("ledger: replayed %d records from an earlier process's journal",
                            replayed)
        self.ledger.start()

    async def aclose(self) -> None:
        """Settles what is still running and flushes the ledger; the stores stay open (they
        are shared: whoever opened them closes them)."""
        if self._budget_guard is not None:
            await self._budget_guard.drain()
        await self._rate_limits.drain()
        await self.alerts.aclose()
        await self.ledger.aclose()  # flushes, then closes (and clears) the journal
