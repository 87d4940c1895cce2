"""`CredentialVault`: provider API keys encrypted at rest, counted in use, rotated on schedule.

Config refers to a credential as `vault:<name>`; `get(name)` decrypts it. Each blob is sealed
with the credential's name as associated data, so a ciphertext moved to another row fails to
open. Decrypted secrets are kept in memory for `cache_s` (they are in memory anyway while a
provider client uses them) so a request costs no store read; `put`/`rotate` replace the entry.

Use counts and last-used times are batched in memory and written by `flush_usage()` (the lead
calls it periodically with the key manager's). Rotation: `due()` lists credentials older than
their `rotate_every_days`; `check_rotation()` raises a `rotation_due` security event for each;
`rotate(name, new_secret_or_rotator)` replaces the secret, and when a rotator fails, records
`last_rotation_error`, emits a `failed_rotation` event and audits it, then raises
`CredentialRotationError`. No secret ever reaches a log line, an event, an audit record or an
error message (a rotator's error text is scrubbed of the current secret before it is stored).
Automated rotation (`rotation.py`) keeps the replaced key, sealed, for an overlap window
(`previous`, `drop_previous`); `CredentialMiddleware` falls back to it when the new key is
refused within that window.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gatewise.errors import (
    AuthenticationError,
    CredentialNotFoundError,
    CredentialRotationError,
    InvalidRequestError,
)
from gatewise.security.audit import AuditLog
from gatewise.security.crypto import SecretBox
from gatewise.security.events import SecurityEventSink
from gatewise.storage.base import CredentialRecord, GovernanceStore

log = logging.getLogger("gatewise.security.credentials")

_DAY = 86400.0
Rotator = Callable[[str], Awaitable[str]]


def _aad(name: str) -> bytes:
    return b"gatewise:credential:" + name.encode()


class CredentialVault:
    def __init__(self, store: GovernanceStore, box: SecretBox, audit: AuditLog,
                 events: SecurityEventSink | None = None, *, rotation_days: int = 90,
                 cache_s: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.box = box
        self.audit = audit
        self.events = events
        self.rotation_days = rotation_days
        self.cache_s = cache_s
        self._clock = clock
        self._plain: dict[str, tuple[float, str]] = {}
        self._uses: dict[str, tuple[int, float]] = {}   # name -> (uses, last used), unflushed

    async def put(self, name: str, provider: str, secret: str, *, actor: str,
                  rotate_every_days: int | None = None) -> CredentialRecord:
        """Stores (or replaces) a credential. Replacing keeps `created` and its use counts."""
        if not name or not secret:
            raise InvalidRequestError("a credential needs a name and a non-empty secret",
                                      param="name" if not name else "secret")
        now = self._clock()
        old = await self.store.get_credential(name)
        rec = CredentialRecord(
            name=name, provider=provider, ciphertext=self.box.seal(secret.encode(), _aad(name)),
            created=old.created if old else now, rotated=now,
            rotate_every_days=rotate_every_days or (old.rotate_every_days if old
                                                    else self.rotation_days),
            last_used=old.last_used if old else None, uses=old.uses if old else 0)
        await self.store.put_credential(rec)
        self._plain.pop(name, None)
        await self.audit.record(actor, "credential.put", name, provider=provider,
                                replaced=old is not None)
        return rec

    async def _record(self, name: str) -> CredentialRecord:
        rec = await self.store.get_credential(name)
        if rec is None:
            raise CredentialNotFoundError(f"no credential {name!r}", param="name")
        return rec

    async def get(self, name: str, *, count: bool = True) -> str:
        """The decrypted key; `count=False` for the gateway's own checks (health probes),
        which are not uses of the key by anyone."""
        now = self._clock()
        hit = self._plain.get(name)
        if hit is not None and hit[0] > now:
            secret = hit[1]
        else:
            rec = await self._record(name)
            secret = self.box.open(rec.ciphertext, _aad(name)).decode()
            self._plain[name] = (now + self.cache_s, secret)
        if count:
            n, _ = self._uses.get(name, (0, 0.0))
            self._uses[name] = (n + 1, now)
        return secret

    async def flush_usage(self) -> int:
        """Adds the batched use counts to the records; returns how many were updated.

        The protocol has no atomic increment, so this re-reads each record right before
        writing it back (other fields, e.g. a concurrent rotation's ciphertext, are kept)."""
        batch, self._uses = self._uses, {}
        done = 0
        for name, (n, last) in batch.items():
            rec = await self.store.get_credential(name)
            if rec is None:
                continue
            rec.uses += n
            rec.last_used = last if rec.last_used is None else max(rec.last_used, last)
            await self.store.put_credential(rec)
            done += 1
        return done

    async def rotate(self, name: str, replacement: str | Rotator, *, actor: str,
                     overlap_s: float | None = None,
                     key_id: Callable[[], str | None] | None = None) -> CredentialRecord:
        """`replacement` is the new secret, or an async function given the current secret that
        returns a new one (e.g. calls the provider's key API).

        With `overlap_s` (automated rotation) the replaced key is kept, sealed, as the
        previous one until `now + overlap_s` (`previous`, `drop_previous`), and `key_id` (read
        after the rotator ran) names the new key upstream so it can be deleted in turn."""
        rec = await self._record(name)
        if isinstance(replacement, str):
            new_secret = replacement
        else:
            current = self.box.open(rec.ciphertext, _aad(name)).decode()
            try:
                new_secret = await replacement(current)
                if not isinstance(new_secret, str) or not new_secret:
                    raise ValueError("rotator returned no secret")
            except Exception as exc:
                await self._rotation_failed(rec, exc, current, actor)
                raise CredentialRotationError(
                    f"rotating credential {name!r} failed ({type(exc).__name__})") from None
        if not new_secret:
            raise InvalidRequestError("the new secret is empty", param="secret")
        now = self._clock()
        if overlap_s is not None:
            rec.previous_ciphertext, rec.previous_key_id = rec.ciphertext, rec.key_id
            rec.previous_until = now + overlap_s
            rec.key_id = key_id() if key_id is not None else None
        rec.ciphertext = self.box.seal(new_secret.encode(), _aad(name))
        rec.rotated = now
        rec.last_rotation_error = None
        await self.store.put_credential(rec)
        self._plain.pop(name, None)
        await self.audit.record(actor, "credential.rotate", name, provider=rec.provider)
        return rec

    async def previous(self, name: str) -> str | None:
        """The key replaced by the last automated rotation while its overlap window lasts
        (a fallback when the new one is refused); None otherwise. Read from the store: it is
        asked for only after a refusal, never per request."""
        rec = await self.store.get_credential(name)
        if (rec is None or rec.previous_ciphertext is None or rec.previous_until is None
                or self._clock() >= rec.previous_until):
            return None
        return self.box.open(rec.previous_ciphertext, _aad(name)).decode()

    async def drop_previous(self, name: str, *, actor: str) -> str | None:
        """Forgets the previous key (its overlap is over); returns its upstream id, if any,
        for the caller to delete it there. Re-reads the record so nothing else is undone."""
        rec = await self.store.get_credential(name)
        if rec is None or (rec.previous_ciphertext is None and rec.previous_key_id is None):
            return None
        key_id = rec.previous_key_id
        rec.previous_ciphertext = rec.previous_until = rec.previous_key_id = None
        await self.store.put_credential(rec)
        await self.audit.record(actor, "credential.previous_dropped", name,
                                provider=rec.provider)
        return key_id

    async def _rotation_failed(self, rec: CredentialRecord, exc: Exception, current: str,
                               actor: str) -> None:
        text = str(exc).replace(current, "[redacted]") if current else str(exc)
        rec.last_rotation_error = f"{type(exc).__name__}: {text}"[:300]
        await self.store.put_credential(rec)
        if self.events is not None:
            self.events.emit("credential", "failed_rotation",
                             detail={"name": rec.name, "provider": rec.provider,
                                     "error_type": type(exc).__name__})
        await self.audit.record(actor, "credential.rotation_failed", rec.name,
                                provider=rec.provider, error_type=type(exc).__name__)
        log.warning("credential rotation failed",
                    extra={"credential": rec.name, "error_type": type(exc).__name__})

    def _is_due(self, rec: CredentialRecord, now: float) -> bool:
        return now >= rec.rotated + rec.rotate_every_days * _DAY

    async def due(self, now: float | None = None) -> list[CredentialRecord]:
        at = self._clock() if now is None else now
        return [r for r in await self.store.list_credentials() if self._is_due(r, at)]

    async def check_rotation(self) -> list[str]:
        """Emits one `rotation_due` event per overdue credential; returns their names."""
        now = self._clock()
        due = await self.due(now)
        for rec in due:
            if self.events is not None:
                self.events.emit("credential", "rotation_due",
                                 detail={"name": rec.name, "provider": rec.provider,
                                         "age_days": round((now - rec.rotated) / _DAY, 1)})
        return [r.name for r in due]

    async def usage_report(self) -> list[dict[str, Any]]:
        """One row per credential (never the secret), including not-yet-flushed uses."""
        now = self._clock()
        rows = []
        for rec in await self.store.list_credentials():
            pending, last = self._uses.get(rec.name, (0, None))
            last_used = rec.last_used if last is None else max(rec.last_used or 0.0, last)
            rows.append({
                "name": rec.name, "provider": rec.provider, "uses": rec.uses + pending,
                "last_used": last_used, "created": rec.created, "rotated": rec.rotated,
                "age_days": round((now - rec.rotated) / _DAY, 1),
                "rotate_every_days": rec.rotate_every_days, "rotation_due": self._is_due(rec, now),
                "last_rotation_error": rec.last_rotation_error})
        return rows


class CredentialMiddleware:
    """Per attempt, last before the provider call: a deployment whose key is `vault:<name>`
    gets the decrypted key from the vault (cached there for `cache_s`, each use counted for
    key-usage monitoring), so a rotation reaches requests without a restart. Deployments with
    plain keys pass through untouched."""

    def __init__(self, vault: Callable[[], CredentialVault]) -> None:
        self._vault = vault
        # dep id -> (secret, deployment carrying it): one copy per key, not per request.
        self._copies: dict[str, tuple[str, Any]] = {}

    async def __call__(self, call: Any, next: Any) -> Any:
        dep = call.deployment
        name = dep.credential if dep is not None else None
        if name is None:
            return await next(call)
        vault = self._vault()
        secret = await vault.get(name)
        cached = self._copies.get(dep.id)
        if cached is None or cached[0] != secret:
            cached = (secret, _with_key(dep, secret))
            self._copies[dep.id] = cached
        call.deployment = cached[1]
        try:
            try:
                return await next(call)
            except AuthenticationError:
                # Within an automated rotation's overlap window the previous key still
                # works: a new key refused (a provider slow to activate it) falls back to
                # the old one for this attempt instead of failing the request.
                previous = await vault.previous(name)
                if previous is None or previous == secret:
                    raise
                call.deployment = _with_key(dep, previous)
                return await next(call)
        finally:
            call.deployment = dep


def _with_key(dep: Any, secret: str) -> Any:
    return dataclasses.replace(dep, target=dataclasses.replace(dep.target, api_key=secret))
