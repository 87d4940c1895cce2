"""`Governance`: the accounting and security pieces of one gateway, built from its config.

Why one object: the server, the library and the CLI need the same stores, key manager, audit
log, ledger and budget middleware, opened once and closed once. Nothing here touches the
network or the disk at construction; stores connect on first use and `start()` (server
start-up, or the first library call) replays a dead process's ledger journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewise.accounting.alerts import SpendAlerts
from gatewise.accounting.budgets import BudgetMiddleware, BudgetSource
from gatewise.accounting.journal import Journal
from gatewise.accounting.ledger import UsageLedger
from gatewise.accounting.middleware import AccountingMiddleware
from gatewise.accounting.prices import PriceTable
from gatewise.accounting.ratelimit import DeploymentLimitMiddleware, RateLimitMiddleware
from gatewise.accounting.tokenizers import Tokenizers
from gatewise.config.loader import ResolvedConfig
from gatewise.pipeline.core import Call, Handler, Identity, Middleware, run_nested
from gatewise.security.access import AccessMiddleware
from gatewise.security.audit import AuditLog
from gatewise.security.events import GatewayEventSink
from gatewise.security.keys import KeyManager, TeamManager
from gatewise.storage.base import BudgetRecord
from gatewise.storage.factory import Stores, open_stores

if TYPE_CHECKING:
    from gatewise.observability.metrics import GatewayMetrics
    from gatewise.security.credentials import CredentialVault
    from gatewise.security.crypto import SecretBox
    from gatewise.storage.base import KVStore
    from gatewise.transport.base import Transport

log = logging.getLogger("gatewise.governance")


class IdentityScoped:
    """Access control, rate limits and budgets all key off who is calling; a caller with no
    key, team or user (the library's own, an unauthenticated local gateway) skips all three
    in one check instead of paying a hop through each."""

    def __init__(self, inner: list[Middleware]) -> None:
        self._inner = tuple(inner)

    async def __call__(self, call: Call, next: Handler) -> Any:
        ident = call.identity
        if ident.permissions is None and ident.key_id is None and ident.team is None \
                and ident.user is None:
            return await next(call)
        return await run_nested(self._inner, call, next)


def cli_actor() -> str:
    """Who acts when an admin command runs from the CLI (recorded in the audit log)."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return f"cli:uid{os.getuid()}"


class Governance:
    def __init__(self, config: ResolvedConfig, *, metrics: GatewayMetrics | None = None,
                 transport: Transport | None = None) -> None:
        self.config = config
        cfg = config.config
        acc = cfg.accounting
        self.stores: Stores = open_stores(config)
        self.prices = PriceTable.load(acc.prices)
        self.tokenizers = Tokenizers()
        self.audit = AuditLog(self.stores.governance)
        sec = cfg.security
        # Security events (guard decisions, denied keys): log + metric + audit row.
        self.events = GatewayEventSink(metrics.security_events if metrics else None, self.audit)
        self.keys = KeyManager(self.stores.governance, self.audit, cache_s=sec.key_cache_s,
                               events=self.events, master_key=config.master_key)
        self.teams = TeamManager(self.stores.governance, self.audit, keys=self.keys)
        journal = None
        if cfg.storage.database != "memory":
            journal = Journal(Path(config.state_dir) / "journal")
        self.journal = journal
        self.ledger = UsageLedger(self.stores.ledger, journal, batch=acc.ledger_batch,
                                  flush_s=acc.ledger_flush_s)
        self.alerts = SpendAlerts(acc.alert_webhook, transport,
                                  metrics_counter=metrics.budget_alerts if metrics else None)
        self._ratelimit: RateLimitMiddleware | None = None
        self._budgets: BudgetMiddleware | None = None
        self.budget_source = BudgetSource(acc.budgets, self.stores.governance.list_budgets)
        self.keys.on_budgets = self.budget_source.invalidate
        self._vault: CredentialVault | None = None
        self._box: SecretBox | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._metrics = metrics

    def middlewares(self) -> list[Middleware]:
        """Once per call, right after telemetry: the ledger sees every outcome (blocked ones
        too), then access control, rate limits and budget reservations."""
        acc = self.config.config.accounting
        out: list[Middleware] = []
        if acc.enabled:
            out.append(AccountingMiddleware(self.ledger, self.prices, self.tokenizers,
                                            metrics=self._metrics.cost if self._metrics else None))
        scoped: list[Middleware] = [AccessMiddleware(self.events)]
        self._ratelimit = RateLimitMiddleware(self.stores.windows, tokenizers=self.tokenizers,
                                              aliases=self.config.aliases)
        scoped.append(self._ratelimit)
        if acc.enabled:
            self._budgets = BudgetMiddleware(
                self.stores.counters, self.budget_source, self.prices, self.tokenizers,
                self.config.aliases, default_max_tokens=acc.default_max_tokens,
                fail_closed=acc.fail_closed, alerts=self.alerts,
                thresholds=tuple(acc.alert_thresholds),
                settle_in_background=self.stores.counters_kind in ("redis", "postgres"))
            scoped.append(self._budgets)
        out.append(IdentityScoped(scoped))
        return out

    def per_attempt(self) -> list[Middleware]:
        """Deployment RPM/TPM, outside retries: a full deployment moves the router on."""
        if any(d.rpm or d.tpm for deps in self.config.aliases.values() for d in deps):
            return [DeploymentLimitMiddleware(self.stores.windows, tokenizers=self.tokenizers)]
        return []

    def provider_call_middlewares(self) -> list[Middleware]:
        """Last before the provider call: keys kept in the credential vault (`vault:<name>`)."""
        if any(d.credential for deps in self.config.aliases.values() for d in deps):
            from gatewise.security.credentials import CredentialMiddleware

            return [CredentialMiddleware(lambda: self.vault)]
        return []

    @property
    def secret_box(self) -> SecretBox:
        """AES-GCM under `security.encryption_key` (built once: a passphrase costs an scrypt).

        Without a key this is a `NotConfiguredError` (409 over HTTP) naming the config key:
        the caller's request is fine, the gateway cannot serve it as configured."""
        if self._box is None:
            from gatewise.errors import NotConfiguredError
            from gatewise.security.crypto import SecretBox

            material = self.config.encryption_key
            if not material:
                raise NotConfiguredError(
                    "storing provider credentials needs an encryption key: set "
                    "'security.encryption_key' in the gateway's config")
            self._box = SecretBox.from_key_material(material)
        return self._box

    @property
    def vault(self) -> CredentialVault:
        """Encrypted provider credentials; needs `security.encryption_key`."""
        if self._vault is None:
            from gatewise.security.credentials import CredentialVault

            self._vault = CredentialVault(
                self.stores.governance, self.secret_box, self.audit, self.events,
                rotation_days=self.config.config.security.rotation_days)
        return self._vault

    def shared_vault_store(self) -> KVStore | None:
        """Where the PII vault keeps placeholder mappings so every replica restores them:
        the Redis KV, sealed with AES-GCM when an encryption key is configured (the mappings
        hold the original personal data). Without Redis they stay in process memory."""
        if not self.config.storage_redis_url:
            return None
        if not self.config.encryption_key:
            return self.stores.kv
        from gatewise.security.crypto import SealedKV

        return SealedKV(self.stores.kv, self.secret_box, context=b"gatewise:pii-vault:")

    async def start(self) -> None:
        """Replays journals left by crashed processes, starts the ledger flusher and the
        key-revocation broadcast. `Gateway.start` calls it once."""
        if self.journal is not None:
            replayed = await self.journal.replay(self.stores.ledger)
            if replayed:
                log.warning("ledger: replayed %d records from an earlier process's journal",
                            replayed)
        self.ledger.start()
        if self.config.storage_redis_url:
            await self.keys.start_broadcast(self.config.storage_redis_url)
        self._tasks.append(asyncio.create_task(self._housekeeping()))

    async def _housekeeping(self) -> None:
        """Off the hot path: key and credential usage every 10 s; once a day, starting a
        minute after start-up (so short-lived processes such as a CLI chat never pay for it),
        credential rotation checks (alerts when due) and the retention purge."""
        ticks = 0
        while True:
            try:
                await self.keys.flush_usage()
                if self._vault is not None:
                    await self._vault.flush_usage()
                if ticks % 8640 == 6:
                    await self.daily()
            except Exception as exc:  # the store may be briefly down; try again later
                log.warning("housekeeping failed: %s", type(exc).__name__)
            ticks += 1
            await asyncio.sleep(10.0)

    async def daily(self) -> None:
        from gatewise.security.retention import purge

        cfg = self.config.config
        if self.config.encryption_key:
            await self.vault.check_rotation()
        await purge(self.stores.ledger, self.stores.governance,
                    usage_days=cfg.accounting.retention_days,
                    audit_days=cfg.security.audit_retention_days)

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.keys.flush_usage()
        if self._budgets is not None:
            await self._budgets.drain()
        if self._ratelimit is not None:
            await self._ratelimit.drain()
        await self.alerts.aclose()
        await self.ledger.aclose()  # flushes, then closes (and clears) the journal
        await self.keys.aclose()
        await self.events.drain()
        await self.stores.aclose()

    async def create_budget(self, *, scope: str, subject: str, period: str,
                            limit_usd: float | None, limit_tokens: int | None, hard: bool,
                            actor: str) -> BudgetRecord:
        rec = BudgetRecord(id=f"bud_{secrets.token_hex(6)}", scope=scope, subject=subject,
                           period=period, limit_usd=limit_usd, limit_tokens=limit_tokens,
                           hard=hard, created=time.time())
        await self.stores.governance.put_budget(rec)
        self.budget_source.invalidate()
        await self.keys.budgets_changed()
        await self.audit.record(actor, "budget.create", rec.id, scope=scope, subject=subject,
                                period=period, limit_usd=limit_usd, limit_tokens=limit_tokens,
                                hard=hard)
        return rec

    async def delete_budget(self, budget_id: str, *, actor: str) -> bool:
        gone = await self.stores.governance.delete_budget(budget_id)
        if gone:
            self.budget_source.invalidate()
            await self.keys.budgets_changed()
            await self.audit.record(actor, "budget.delete", budget_id)
        return gone

    def master_identity(self) -> Identity:
        return self.keys.master_identity()
