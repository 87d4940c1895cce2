"""Config → security: virtual keys, teams, the audit log, security events, the credential
vault, access control and retention.

Built once per gateway (`gateway.py`) or per admin command (`cli/admin.py`) over the stores
they share with accounting. Nothing here touches the network or the disk at construction;
`start()` subscribes to the key-revocation broadcast and starts the housekeeping task (usage
flushes, credential rotation checks, the retention purge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from gatewise.config.loader import ResolvedConfig
from gatewise.observability.recent_shared import build_security_feed
from gatewise.pipeline.core import Middleware
from gatewise.security.access import AccessMiddleware
from gatewise.security.audit import AuditLog
from gatewise.security.events import GatewayEventSink
from gatewise.security.keys import KeyManager
from gatewise.security.teams import TeamManager
from gatewise.storage.factory import Stores

if TYPE_CHECKING:
    from gatewise.observability.metrics import GatewayMetrics
    from gatewise.security.credentials import CredentialVault
    from gatewise.security.crypto import SecretBox
    from gatewise.security.rotation import KeyRotation
    from gatewise.storage.base import KVStore

log = logging.getLogger("gatewise.security")


class Security:
    """The security parts of one gateway, its middleware by stage, and what must be started
    and closed with them."""

    def __init__(self, config: ResolvedConfig, stores: Stores, *,
                 metrics: GatewayMetrics | None = None) -> None:
        sec = config.config.security
        self._config = config
        self._stores = stores
        self.store = stores.governance
        self.audit = AuditLog(stores.governance)
        # Security events (guard decisions, denied keys): log + metric + audit row, and the
        # console's feed (every replica's with Redis).
        self.events = GatewayEventSink(metrics.security_events if metrics else None, self.audit,
                                       guards=metrics.guard_decisions if metrics else None,
                                       recent=build_security_feed(stores.security_log))
        self.keys = KeyManager(stores.governance, self.audit, cache_s=sec.key_cache_s,
                               events=self.events, master_key=config.master_key)
        self.teams = TeamManager(stores.governance, self.audit, keys=self.keys)
        # Once per call, first of the identified caller's checks.
        self.access = AccessMiddleware(self.events)
        # Last before the provider call: keys kept in the credential vault (`vault:<name>`).
        self.per_provider_call: list[Middleware] = []
        if any(d.credential for deps in config.aliases.values() for d in deps):
            from gatewise.security.credentials import CredentialMiddleware

            self.per_provider_call.append(CredentialMiddleware(lambda: self.vault))
        self._vault: CredentialVault | None = None
        self._box: SecretBox | None = None
        # Automated key rotation (`security.rotation`), set by `build_key_rotation` when
        # configured: the admin API's "rotate now" without a secret uses it.
        self.rotation: KeyRotation | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # The daily rotation check and retention purge of the housekeeping loop; off when
        # the maintenance scheduler runs them as jobs (`rotation_check`, `retention_purge`).
        self.daily_jobs = True

    @property
    def vault_configured(self) -> bool:
        """Whether `security.encryption_key` is set (the credential vault needs it)."""
        return bool(self._config.encryption_key)

    @property
    def secret_box(self) -> SecretBox:
        """AES-GCM under `security.encryption_key` (built once: a passphrase costs an scrypt).

        Without a key this is a `NotConfiguredError` (409 over HTTP) naming the config key:
        the caller's request is fine, the gateway cannot serve it as configured."""
        if self._box is None:
            from gatewise.errors import NotConfiguredError
            from gatewise.security.crypto import SecretBox

            material = self._config.encryption_key
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
                self.store, self.secret_box, self.audit, self.events,
                rotation_days=self._config.config.security.rotation_days)
        return self._vault

    def pii_vault_store(self) -> KVStore | None:
        """Where the PII vault keeps placeholder mappings so every replica restores them:
        the Redis KV, sealed with AES-GCM when an encryption key is configured (the mappings
        hold the original personal data). Without Redis they stay in process memory."""
        if not self._config.storage_redis_url:
            return None
        if not self._config.encryption_key:
            return self._stores.kv
        from gatewise.security.crypto import SealedKV

        return SealedKV(self._stores.kv, self.secret_box, context=b"gatewise:pii-vault:")

    async def purge(self, *, actor: str = "system") -> dict[str, int]:
        """Deletes usage and audit records and idle conversations past their configured
        retention."""
        from gatewise.security.retention import purge

        cfg = self._config.config
        return await purge(self._stores.ledger, self.store,
                           usage_days=cfg.accounting.retention_days,
                           audit_days=cfg.security.audit_retention_days, actor=actor,
                           conversations=self._stores.conversations,
                           conversation_days=cfg.memory.retention_days)

    async def start(self) -> None:
        """Starts the key-revocation broadcast (with Redis), the housekeeping task and the
        audit log's batched writes (security events) and the console's shared feed of them."""
        self.audit.start()
        self.events.recent.start()
        if self._config.storage_redis_url:
            await self.keys.start_broadcast(self._config.storage_redis_url)
        elif self._stores.new_pubsub is not None:  # PostgreSQL without Redis: LISTEN/NOTIFY
            await self.keys.start_broadcast(pubsub=self._stores.new_pubsub(), owned=True)
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
                if ticks % 8640 == 6 and self.daily_jobs:
                    await self.daily()
            except Exception as exc:  # the store may be briefly down; try again later
                log.warning("housekeeping failed: %s", type(exc).__name__)
            ticks += 1
            await asyncio.sleep(10.0)

    async def daily(self) -> None:
        if self._config.encryption_key:
            await self.vault.check_rotation()
        await self.purge()

    async def aclose(self) -> None:
        """Stops housekeeping, flushes key usage, leaves the broadcast and writes the
        security events' batched audit rows; the stores stay open (they are shared)."""
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.keys.flush_usage()
        await self.keys.aclose()
        await self.events.recent.aclose()  # the console feed's last batch goes out
        await self.audit.aclose()  # the security events' audit rows still batched
