"""Virtual API keys: `sk-gw-<id>-<secret>`, scoped to a role, a team, models and limits.

- The id (12 hex) is public: it appears in logs, the ledger and the audit log. The secret
  (43 URL-safe characters, 256 bits from `secrets`) is shown once, by `create`/`rotate`; the
  store keeps only its sha256. A secret that random needs no slow hash: nobody can brute-force
  2**256, and a fast hash keeps authentication at a few microseconds.
- `authenticate` runs on every request, so each replica caches what it read per key id for
  `cache_s` (and "no such key" for `negative_cache_s`): a cached check is a regex match, one
  sha256 and `hmac.compare_digest`. Expiry is checked against the clock on every call, not
  only at load. Last-used times are batched in memory and written by `flush_usage()`.
- Changes (revoke, update, rotate, team edits) drop the local cache entry at once and, when
  `start_broadcast` was called, publish the key id on `gatewise:keys` (through the storage
  seam's `PubSub`: Redis, or PostgreSQL LISTEN/NOTIFY without Redis) so every other replica
  drops it too: a revocation takes effect everywhere within a publish round trip. If the
  backend is unreachable, staleness is still bounded
  by `cache_s`; after a reconnect the whole cache is dropped, since messages may have been
  missed meanwhile.
- Error messages never echo the presented token; before the secret matches they do not even
  say whether the id exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from gatewise.errors import (
    ConflictError,
    InvalidRequestError,
    KeyNotFoundError,
    TeamNotFoundError,
    UnauthorizedError,
)
from gatewise.pipeline.core import Identity
from gatewise.security.audit import AuditLog
from gatewise.security.events import SecurityEventSink
from gatewise.security.rbac import permissions_for, validate_permissions, validate_role
from gatewise.storage.base import GovernanceStore, KeyRecord, StoreUnavailableError, TeamRecord

if TYPE_CHECKING:
    from gatewise.storage.base import PubSub, Subscription

log = logging.getLogger("gatewise.security.keys")

KEY_PREFIX = "sk-gw-"
CHANNEL = "gatewise:keys"
_KEY_RE = re.compile(r"sk-gw-([0-9a-f]{12})-([A-Za-z0-9_-]{32,128})")
_INVALID = "invalid API key"
_UPDATABLE = frozenset({"name", "role", "team", "user", "models", "permissions", "expires", "rpm",
                        "tpm", "metadata"})


def parse_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed virtual key, else None."""
    m = _KEY_RE.fullmatch(token)
    return None if m is None else (m[1], m[2])


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(slots=True)
class _Entry:
    digest: bytes
    expires: float | None
    revoked: float | None
    identity: Identity


class KeyManager:
    def __init__(self, store: GovernanceStore, audit: AuditLog, *, cache_s: float = 5.0,
                 negative_cache_s: float = 1.0, max_cached: int = 100_000,
                 clock: Callable[[], float] = time.time, events: SecurityEventSink | None = None,
                 master_key: str | None = None, channel: str = CHANNEL) -> None:
        self.store = store
        self.audit = audit
        self.cache_s = cache_s
        self.negative_cache_s = min(negative_cache_s, cache_s)
        self.channel = channel
        self._max_cached = max_cached
        self._clock = clock
        self._events = events
        self._master = None if not master_key else hashlib.sha256(master_key.encode()).digest()
        self._cache: dict[str, tuple[float, _Entry | None]] = {}
        # Bumped by every invalidation: a store read that raced one is not cached.
        self._epoch = 0
        # Store reads in flight by key id: when a cached key expires under load, every
        # request for it until the read lands shares that one read (not one read each).
        self._loading: dict[str, asyncio.Task[_Entry | None]] = {}
        self._used: dict[str, float] = {}
        self._pubsub: PubSub | None = None
        self._owns_pubsub = False
        self._sub: Subscription | None = None
        # Called when another replica announces a budget change (see `budgets_changed`).
        self.on_budgets: Callable[[], None] | None = None
        self._warned_at = 0.0

    # -- authentication (hot path) ---------------------------------------------------------
    def master_identity(self) -> Identity:
        return Identity(tenant="default", key_id="master", role="admin", permissions=None)

    async def authenticate(self, token: str) -> Identity:
        if self._master is not None and hmac.compare_digest(
                hashlib.sha256(token.encode()).digest(), self._master):
            return self.master_identity()
        parsed = parse_key(token)
        if parsed is None:
            self._deny(None, "malformed")
            raise UnauthorizedError(_INVALID)
        key_id, secret = parsed
        now = self._clock()
        hit = self._cache.get(key_id)
        entry = await self._load(key_id, now) if hit is None or hit[0] <= now else hit[1]
        return self._admit(key_id, entry, hashlib.sha256(secret.encode()).digest(), now)

    def _admit(self, key_id: str, entry: _Entry | None, digest: bytes, now: float) -> Identity:
        """The checks after the (cached) read: secret, revocation, expiry."""
        if entry is None or not hmac.compare_digest(digest, entry.digest):
            self._deny(key_id, "invalid")
            raise UnauthorizedError(_INVALID)
        if entry.revoked is not None:
            self._deny(key_id, "revoked")
            raise UnauthorizedError("API key has been revoked")
        if entry.expires is not None and now >= entry.expires:
            self._deny(key_id, "expired")
            raise UnauthorizedError("API key has expired")
        self._used[key_id] = now
        return entry.identity

    async def authenticate_digest(self, key_id: str, digest: bytes) -> Identity:
        """A web-console session's check (`gatewise.server.console.sessions`): the session
        keeps the key id and its secret's sha256, never the secret, and every request runs
        the same cached read, revocation and expiry checks as `authenticate`, so revoking or
        expiring the key ends its sessions as fast as it ends bearer use. `master` is the
        master key (its sha256, compared with the configured one)."""
        if key_id == "master":
            if self._master is None or not hmac.compare_digest(digest, self._master):
                self._deny(None, "invalid")
                raise UnauthorizedError(_INVALID)
            return self.master_identity()
        now = self._clock()
        hit = self._cache.get(key_id)
        entry = await self._load(key_id, now) if hit is None or hit[0] <= now else hit[1]
        return self._admit(key_id, entry, digest, now)

    def _deny(self, key_id: str | None, reason: str) -> None:
        if self._events is not None:
            self._events.emit("auth", "deny", key_id=key_id, detail={"reason": reason})

    async def _load(self, key_id: str, now: float) -> _Entry | None:
        """The key's entry from the store, one read at a time per key id. The read is a task of
        its own, so a caller that goes away (its request cancelled) does not cancel it for
        the others waiting on it."""
        task = self._loading.get(key_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._read(key_id, now, self._epoch))
            self._loading[key_id] = task
            task.add_done_callback(partial(self._loaded, key_id))
        return await asyncio.shield(task)

    def _loaded(self, key_id: str, task: asyncio.Task[_Entry | None]) -> None:
        if self._loading.get(key_id) is task:
            del self._loading[key_id]
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have gone

    async def _read(self, key_id: str, now: float, epoch: int) -> _Entry | None:
        rec = await self.store.get_key(key_id)
        entry = None
        if rec is not None:
            team = await self.store.get_team(rec.team) if rec.team else None
            entry = self._entry(rec, team)
        if epoch == self._epoch:
            ttl = self.cache_s if entry is not None else self.negative_cache_s
            cache = self._cache
            if len(cache) >= self._max_cached and key_id not in cache:
                del cache[next(iter(cache))]  # oldest first; a flood of bogus ids stays bounded
            cache[key_id] = (now + ttl, entry)
        return entry

    def _entry(self, rec: KeyRecord, team: TeamRecord | None) -> _Entry | None:
        if rec.team and team is None:
            log.warning("key refers to a missing team; refusing it", extra={"key_id": rec.id})
            return None
        try:
            digest = bytes.fromhex(rec.secret_hash)
            perms = permissions_for(rec.role, rec.permissions)
        except ValueError:
            log.warning("key record is invalid; refusing it", extra={"key_id": rec.id})
            return None
        ident = Identity(
            tenant=rec.team or "default", user=rec.user, key_id=rec.id, team=rec.team,
            role=rec.role, permissions=perms, models=tuple(rec.models),
            team_models=tuple(team.models) if team else (), rpm=rec.rpm, tpm=rec.tpm,
            team_rpm=team.rpm if team else None, team_tpm=team.tpm if team else None)
        return _Entry(digest, rec.expires, rec.revoked, ident)

    async def flush_usage(self) -> int:
        """Writes the batched last-used times; returns how many keys were touched."""
        if not self._used:
            return 0
        batch, self._used = self._used, {}
        try:
            await self.store.touch_keys(batch)
        except BaseException:
            for k, ts in batch.items():  # keep them for the next flush
                if ts > self._used.get(k, 0.0):
                    self._used[k] = ts
            raise
        return len(batch)

    # -- management --------------------------------------------------------------------------
    async def _check_scope(self, role: str, team: str | None, permissions: Iterable[str], *,
                           existing: bool = False) -> None:
        """A team that does not exist is a 404 (the request is well formed, the team is
        missing); a team_admin role for an existing teamless key is a 409 (its state)."""
        try:
            validate_role(role)
            validate_permissions(permissions)
        except ValueError as exc:
            raise InvalidRequestError(str(exc), param="role") from None
        if team is not None and await self.store.get_team(team) is None:
            raise TeamNotFoundError(f"team {team!r} does not exist", param="team")
        if role == "team_admin" and team is None:
            error = ConflictError if existing else InvalidRequestError
            raise error("a team_admin key needs a team", param="team")

    async def _new_id(self) -> str:
        while True:
            key_id = secrets.token_hex(6)
            if await self.store.get_key(key_id) is None:
                return key_id

    async def create(self, *, name: str, role: str, team: str | None = None,
                     user: str | None = None, models: Iterable[str] = (),
                     permissions: Iterable[str] = (), expires: float | None = None,
                     rpm: int | None = None, tpm: int | None = None,
                     metadata: dict[str, Any] | None = None, actor: str,
                     expires_in_s: float | None = None) -> tuple[str, KeyRecord]:
        """Returns the full key (shown once; only its hash is stored) and the record.
        `expires_in_s` (> 0) counts from this manager's clock, so a short lifetime cannot
        have run out before the key is stored; `expires` is an absolute time."""
        models, permissions = list(models), list(permissions)
        await self._check_scope(role, team, permissions)
        now = self._clock()
        if expires_in_s is not None:
            if not expires_in_s > 0:
                raise InvalidRequestError("expires_in_s must be positive", param="expires_in_s")
            expires = now + expires_in_s  # may round to `now` itself: expired at once, as asked
        elif expires is not None and expires <= now:
            raise InvalidRequestError("expires must be in the future", param="expires")
        key_id, secret = await self._new_id(), secrets.token_urlsafe(32)
        rec = KeyRecord(id=key_id, secret_hash=hash_secret(secret), name=name, role=role,
                        team=team, user=user, models=models, permissions=permissions,
                        created=now, expires=expires, rpm=rpm, tpm=tpm,
                        metadata=dict(metadata or {}))
        await self.store.put_key(rec)
        self.invalidate(key_id)
        await self.audit.record(actor, "key.create", key_id, name=name, role=role, team=team,
                                user=user, models=models, permissions=permissions,
                                expires=expires, rpm=rpm, tpm=tpm)
        return f"{KEY_PREFIX}{key_id}-{secret}", rec

    async def get(self, key_id: str) -> KeyRecord:
        rec = await self.store.get_key(key_id)
        if rec is None:
            raise KeyNotFoundError(f"no key {key_id!r}", param="key_id")
        return rec

    async def list(self, team: str | None = None) -> list[KeyRecord]:
        return await self.store.list_keys(team)

    async def update(self, key_id: str, *, actor: str, **changes: Any) -> KeyRecord:
        unknown = sorted(set(changes) - _UPDATABLE)
        if unknown:
            raise InvalidRequestError(f"cannot update {', '.join(unknown)}", param=unknown[0])
        rec = await self.get(key_id)
        for field in ("models", "permissions"):
            if field in changes:
                changes[field] = list(changes[field])
        await self._check_scope(changes.get("role", rec.role), changes.get("team", rec.team),
                                changes.get("permissions", rec.permissions), existing=True)
        for field, value in changes.items():
            setattr(rec, field, value)
        await self.store.put_key(rec)
        await self._changed(key_id)
        shown = {k: v for k, v in changes.items() if k != "metadata"}
        await self.audit.record(actor, "key.update", key_id, fields=sorted(changes), changes=shown)
        return rec

    async def revoke(self, key_id: str, *, actor: str) -> KeyRecord:
        rec = await self.get(key_id)
        if rec.revoked is None:
            rec.revoked = self._clock()
            await self.store.put_key(rec)
        await self._changed(key_id)
        await self.audit.record(actor, "key.revoke", key_id)
        return rec

    async def rotate(self, key_id: str, *, actor: str,
                     overlap_s: float = 86400.0) -> tuple[str, KeyRecord]:
        """A new key with the same scope; the old one keeps working for `overlap_s` (so clients
        can be redeployed) and then expires."""
        old = await self.get(key_id)
        now = self._clock()
        if old.revoked is not None or (old.expires is not None and old.expires <= now):
            raise ConflictError("cannot rotate a revoked or expired key", param="key_id")
        if old.rotated_to is not None:
            raise ConflictError(f"key was already rotated to {old.rotated_to}", param="key_id")
        new_id, secret = await self._new_id(), secrets.token_urlsafe(32)
        new = KeyRecord(id=new_id, secret_hash=hash_secret(secret), name=old.name, role=old.role,
                        team=old.team, user=old.user, models=list(old.models),
                        permissions=list(old.permissions), created=now, expires=old.expires,
                        rpm=old.rpm, tpm=old.tpm, metadata=dict(old.metadata))
        await self.store.put_key(new)
        old.rotated_to = new_id
        old.expires = now + overlap_s if old.expires is None else min(old.expires, now + overlap_s)
        await self.store.put_key(old)
        self.invalidate(new_id)
        await self._changed(key_id)
        await self.audit.record(actor, "key.rotate", key_id, new_key_id=new_id,
                                overlap_s=overlap_s)
        return f"{KEY_PREFIX}{new_id}-{secret}", new

    # -- invalidation, local and across replicas ----------------------------------------------
    def invalidate(self, key_id: str) -> None:
        self._cache.pop(key_id, None)
        self._loading.clear()  # a read begun before the change: later callers read again
        self._epoch += 1

    def invalidate_team(self, team: str) -> None:
        for key_id in [k for k, (_, e) in self._cache.items()
                       if e is not None and e.identity.team == team]:
            del self._cache[key_id]
        self._loading.clear()
        self._epoch += 1

    def clear_cache(self) -> None:
        self._cache.clear()
        self._loading.clear()
        self._epoch += 1

    async def _changed(self, key_id: str) -> None:
        self.invalidate(key_id)
        await self._publish(key_id)

    async def team_changed(self, team: str) -> None:
        """A team's models or limits changed: every replica rebuilds its keys' identities."""
        self.invalidate_team(team)
        await self._publish(f"team:{team}")

    async def _publish(self, message: str) -> None:
        if self._pubsub is None:
            return
        try:
            await self._pubsub.publish(self.channel, message)
        except StoreUnavailableError as exc:
            self._trouble(exc)

    async def budgets_changed(self) -> None:
        """A budget was created or deleted: every replica re-reads its budget records now
        instead of when its cache expires (`on_budgets` is called on each of them)."""
        await self._publish("budgets")

    def _on_message(self, data: Any) -> None:
        msg = data.decode() if isinstance(data, bytes) else str(data)
        if msg == "*":
            self.clear_cache()
        elif msg == "budgets":
            if self.on_budgets is not None:
                self.on_budgets()
        elif msg.startswith("team:"):
            self.invalidate_team(msg[5:])
        else:
            self.invalidate(msg)

    async def start_broadcast(self, redis_url: str | None = None, *, pubsub: PubSub | None = None,
                              ready_timeout_s: float = 2.0, owned: bool = False) -> None:
        """Subscribes to the invalidation channel on `pubsub` (closed with this manager when
        `owned`) or on a Redis one built from `redis_url`; returns once subscribed (or, if the
        backend is unreachable, after one failed try: the subscription keeps retrying in the
        background)."""
        if self._sub is not None:
            return
        if pubsub is None:
            if redis_url is None:
                raise ValueError("start_broadcast needs a redis url or a PubSub")
            from gatewise.storage.pubsub import RedisPubSub

            pubsub = RedisPubSub(redis_url, connect_timeout_s=1.0, op_timeout_s=2.0)
            owned = True
        self._owns_pubsub = owned
        self._pubsub = pubsub
        self._sub = pubsub.subscribe(self.channel, self._on_message, on_connect=self._on_connect,
                                     on_error=self._trouble)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ready_timeout_s):
                await self._sub.wait_ready()

    async def _on_connect(self, resumed: bool) -> None:
        if resumed:  # messages may have been lost while disconnected
            self.clear_cache()
            log.warning("key broadcast reconnected; key cache dropped")

    def _trouble(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            self._warned_at = now
            log.warning("key broadcast unavailable; revocations reach other replicas "
                        "within cache_s", extra={"error_type": type(exc).__name__})

    async def aclose(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.aclose()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None and self._owns_pubsub:
            await pubsub.aclose()
        try:
            await self.flush_usage()
        except Exception as exc:
            log.warning("could not flush key last-used times", extra={"error_type": type(exc).__name__})

__all__ = ["CHANNEL", "KEY_PREFIX", "KeyManager", "KeyNotFoundError", "hash_secret",
           "parse_key"]
