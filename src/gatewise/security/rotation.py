"""Automated provider-key rotation: the `key_rotation` maintenance job and "rotate now".

Per credential named in `security.rotation`, when `every_days` have passed since the record's
`rotated` time: a new key comes from the configured source (`rotation_sources.py`), is checked
live (the provider's model list, through the adapter of `verify_deployment`, with the new key)
and only then replaces the old one in the vault. The old key stays, sealed, as the previous
one for `overlap_s` (other replicas may still hold it in their 30 s cache; a new key refused
upstream falls back to it in `CredentialMiddleware`), and is then dropped, and deleted upstream
when the source can (OpenAI's admin API).

A failed rotation keeps the old key and is reported everywhere an operator looks: the
record's `last_rotation_error` (sanitized), the `failed_rotation` security event and a
warning (both by the vault), `gatewise_key_rotations_total{outcome="failed"}`, and a POST to
`alert_webhook`. No key is ever logged, returned, put in an error or in an alert.

`gatewise_credential_age_seconds` is refreshed at scrape time from the records this job last
read (no store I/O while Prometheus waits).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from gatewise.config.loader import ResolvedConfig
from gatewise.config.schema_ops import RotationSourceConfig
from gatewise.config.secrets import resolve_secret
from gatewise.errors import (
    ConfigError,
    CredentialNotFoundError,
    CredentialRotationError,
    GatewayError,
    NotConfiguredError,
)
from gatewise.security.rotation_sources import (
    NewKey,
    RotationSource,
    RotationSourceError,
    build_source,
)
from gatewise.transport.base import HttpRequest, Timeouts, Transport

if TYPE_CHECKING:
    from gatewise.observability.metrics import GatewayMetrics
    from gatewise.providers.deployment import Deployment
    from gatewise.providers.pool import ProviderPool
    from gatewise.security.credentials import CredentialVault
    from gatewise.storage.base import CredentialRecord

log = logging.getLogger("gatewise.security.rotation")

_DAY = 86400.0
_ACTOR = "system:key_rotation"
# A key goes into an Authorization header: one printable token, no whitespace.
_KEY_SHAPE = re.compile(r"[\x21-\x7e]{8,4096}")
_ALERT_TIMEOUTS = Timeouts(total=10.0, connect=5.0, read=10.0)
# (credential, new secret) -> None, raising when the provider refuses the key.
Verify = Callable[[str, str], Awaitable[None]]


class _Security(Protocol):
    """What `build_key_rotation` needs of `security.build.Security` (which imports this
    module, so it is not imported back)."""

    rotation: KeyRotation | None

    @property
    def vault(self) -> CredentialVault: ...


class KeyVerificationError(Exception):
    """The live check with the new key failed; the message names no key."""


class DeploymentVerifier:
    """The live check: `validate_key` (the provider's model list, which spends nothing) of
    the credential's deployment, with the new key in place of the stored one."""

    def __init__(self, pool: ProviderPool, deployments: dict[str, Deployment],
                 timeout_s: dict[str, float]) -> None:
        self._pool = pool
        self._deployments = deployments
        self._timeout_s = timeout_s

    async def __call__(self, credential: str, secret: str) -> None:
        dep = self._deployments[credential]
        target = dataclasses.replace(dep.target, api_key=secret)
        try:
            await asyncio.wait_for(self._pool.client_for(target).validate_key(target),
                                   self._timeout_s.get(credential, 30.0))
        except TimeoutError:
            raise KeyVerificationError(f"live check on {dep.id} timed out") from None
        except GatewayError as exc:  # upstream text may echo part of the key: not kept
            raise KeyVerificationError(
                f"live check on {dep.id} refused the new key ({type(exc).__name__}, "
                f"HTTP {exc.status})") from None


class KeyRotation:
    """The `key_rotation` job (`maintenance.jobs.Job`) and the admin API's "rotate now"."""

    name = "key_rotation"
    default_interval_s = 3600.0

    def __init__(self, vault: Callable[[], CredentialVault],
                 configs: dict[str, RotationSourceConfig], sources: dict[str, RotationSource],
                 verify: Verify, *, metrics: GatewayMetrics | None = None,
                 transport: Transport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._vault = vault
        self.configs = configs
        self.sources = sources
        self._verify = verify
        self._metrics = metrics
        self._transport = transport
        self._clock = clock
        self._encode = msgspec.json.Encoder().encode
        # name -> last rotation time, from the records the last run read (for the age gauge).
        self._rotated: dict[str, float] = {}
        if metrics is not None:
            metrics.add_collector(self.collect)

    # -- the job ------------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        """Ends overlap windows that are over, then rotates every configured credential that
        is due. One credential failing never stops the others."""
        vault = self._vault()
        records = await vault.store.list_credentials()
        self._rotated = {r.name: r.rotated for r in records}
        now = self._clock()
        expired: list[str] = []
        for rec in records:
            if rec.previous_until is not None and now >= rec.previous_until \
                    and await self._expire(rec.name):
                expired.append(rec.name)
        rotated: list[str] = []
        failed: list[str] = []
        not_due = 0
        stored = {r.name: r for r in records}
        for name, cfg in self.configs.items():
            found = stored.get(name)
            if found is None:
                continue
            if now < found.rotated + cfg.every_days * _DAY:
                not_due += 1
                continue
            try:
                await self.rotate_now(name, actor=_ACTOR)
                rotated.append(name)
            except CredentialRotationError:
                failed.append(name)
        missing = sorted(set(self.configs) - set(stored))
        if missing:
            log.warning("key rotation configured for credentials not stored in the vault: %s",
                        ", ".join(missing))
        return {"rotated": rotated, "failed": failed, "expired": expired, "not_due": not_due,
                "missing": missing}

    # -- one rotation -------------------------------------------------------------------------
    async def rotate_now(self, name: str, *, actor: str) -> CredentialRecord:
        """Rotates `name` from its configured source now, due or not. Raises
        `NotConfiguredError` (409) without a source, `CredentialRotationError` (502) when the
        source or the live check fails (the old key stays)."""
        cfg, source = self.configs.get(name), self.sources.get(name)
        if cfg is None or source is None:
            raise NotConfiguredError(
                f"no rotation source for credential '{name}': give a 'secret', or configure "
                f"'security.rotation.{name}'")
        vault = self._vault()
        rec = await vault.store.get_credential(name)
        if rec is None:
            raise CredentialNotFoundError(f"no credential {name!r}", param="name")
        if (rec.previous_ciphertext is not None or rec.previous_key_id is not None) \
                and not await self._expire(name):
            # A key still in its overlap window: a new rotation ends that window now. When
            # the source could not delete it, say which (a public id) before it is forgotten.
            log.warning("credential %s: the replaced key %s is left upstream; delete it by "
                        "hand", name, rec.previous_key_id)
        made: list[NewKey] = []

        async def rotator(current: str) -> str:
            try:
                new = await source.new_key(name)
            except RotationSourceError:
                raise
            except Exception as exc:  # a bug in a source: its text is not trusted
                raise RotationSourceError(f"{source.kind} source failed "
                                          f"({type(exc).__name__})") from None
            made.append(new)
            if not _KEY_SHAPE.fullmatch(new.secret):
                raise RotationSourceError("the new key is not one printable token of 8 to "
                                          "4096 characters")
            if new.secret == current:
                raise RotationSourceError("the source returned the current key")
            await self._verify(name, new.secret)
            return new.secret

        try:
            rec = await vault.rotate(name, rotator, actor=actor, overlap_s=cfg.overlap_s,
                                     key_id=lambda: made[-1].key_id if made else None)
        except CredentialRotationError:
            await self._failed(name, rec.provider, cfg, source)
            for new in made:  # a key made upstream but refused: revoke it, don't leak it
                if new.key_id:
                    await self._delete_upstream(name, source, new.key_id)
            raise
        self._count(name, "ok")
        self._rotated[name] = rec.rotated
        log.info("credential rotated", extra={"credential": name, "source": source.kind,
                                              "overlap_s": cfg.overlap_s})
        if cfg.overlap_s == 0:
            await self._expire(name)
        return rec

    async def _expire(self, name: str) -> bool:
        """The previous key's window is over: delete it upstream (when the source can), then
        forget it. A failed upstream delete keeps the record so the next run tries again (the
        vault stops offering the key as a fallback once its window is over either way)."""
        vault = self._vault()
        rec = await vault.store.get_credential(name)
        if rec is None:
            return False
        source = self.sources.get(name)
        if rec.previous_key_id and source is not None and \
                not await self._delete_upstream(name, source, rec.previous_key_id):
            return False
        await vault.drop_previous(name, actor=_ACTOR)
        return True

    async def _delete_upstream(self, name: str, source: RotationSource, key_id: str) -> bool:
        try:
            await source.delete_key(key_id)
            return True
        except RotationSourceError as exc:
            log.warning("could not delete a replaced key of credential %s upstream: %s",
                        name, exc)
            return False

    async def _failed(self, name: str, provider: str, cfg: RotationSourceConfig,
                      source: RotationSource) -> None:
        self._count(name, "failed")
        if not cfg.alert_webhook or self._transport is None:
            return
        rec = await self._vault().store.get_credential(name)
        body = self._encode({
            "type": "gatewise.key_rotation_failed", "credential": name, "provider": provider,
            "source": source.kind, "at": self._clock(),
            "error": rec.last_rotation_error if rec is not None else None,
            # A Slack incoming webhook requires `text`; no key, no error detail.
            "text": f"gatewise: rotating credential {name} ({provider}, {source.kind}) "
                    "failed; the old key stays in use"})
        req = HttpRequest("POST", cfg.alert_webhook, {"content-type": "application/json"},
                          body, _ALERT_TIMEOUTS)
        try:
            resp = await self._transport.send(req)
        except Exception as exc:  # the URL is not logged: alert URLs often embed a token
            log.warning("key rotation alert webhook failed: %s", type(exc).__name__)
            return
        if resp.status >= 300:
            log.warning("key rotation alert webhook answered HTTP %d", resp.status)

    def _count(self, name: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.key_rotations.inc((name, outcome))

    # -- metrics ------------------------------------------------------------------------------
    def collect(self) -> None:
        """Scrape time: each known credential's age in seconds, from memory only."""
        if self._metrics is None:
            return
        gauge, now = self._metrics.credential_age, self._clock()
        for labels in [k for k in gauge.values if k[0] not in self._rotated]:
            gauge.remove(labels)
        for name, at in self._rotated.items():
            gauge.set((name,), max(0.0, now - at))


def _verify_deployments(config: ResolvedConfig) -> dict[str, Deployment]:
    """Per configured credential, the deployment the live check goes through:
    `verify_deployment` (a deployment id or an alias), else the first deployment using
    `vault:<name>`."""
    deps = [d for ds in config.aliases.values() for d in ds]
    out: dict[str, Deployment] = {}
    for name, cfg in config.config.security.rotation.items():
        want = cfg.verify_deployment
        if want:
            found = next((d for d in deps if want in (d.id, d.alias)), None)
        else:
            found = next((d for d in deps if d.credential == name), None)
        if found is None:
            raise ConfigError(
                f"names '{want}', which is no deployment id or alias" if want else
                f"no deployment uses 'vault:{name}': set 'verify_deployment' for the live "
                "check of a new key", file=config.file,
                path=f"security.rotation.{name}.verify_deployment")
        out[name] = found
    return out


def build_key_rotation(config: ResolvedConfig, security: _Security, pool: ProviderPool,
                       metrics: GatewayMetrics | None = None, *,
                       clock: Callable[[], float] = time.time) -> KeyRotation | None:
    """Config → the rotation job, or None when `security.rotation` is empty. Secret
    references (an admin key, webhook headers) are resolved here, once."""
    rotations = config.config.security.rotation
    if not rotations:
        return None
    if not config.encryption_key:
        raise ConfigError("key rotation stores keys in the credential vault, which needs "
                          "'security.encryption_key'", file=config.file,
                          path="security.rotation")

    def secret(value: str | None, path: str) -> str | None:
        return resolve_secret(value, env=config.env, file=config.file, path=path)

    sources = {name: build_source(name, cfg, transport=pool.transport, secret=secret,
                                  clock=clock, file=config.file)
               for name, cfg in rotations.items()}
    verifier = DeploymentVerifier(pool, _verify_deployments(config),
                                  {n: c.timeout_s for n, c in rotations.items()})
    job = KeyRotation(lambda: security.vault, dict(rotations), sources, verifier,
                      metrics=metrics, transport=pool.transport, clock=clock)
    security.rotation = job
    return job
