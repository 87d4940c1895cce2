"""Web-console sessions: a key signed in once, then a cookie plus a CSRF token per request.

- `POST /console/session` checks the key exactly as API authentication does
  (`KeyManager.authenticate`, which also knows the master key) and stores a session in the
  gateway's key-value store (`stores.kv`: memory or SQLite for one process, Redis or
  PostgreSQL for many replicas, so any replica accepts the cookie). The stored record holds
  the key id and the sha256 of its secret (as the key store does), never the key; it lives
  under the sha256 of the session id, so reading the store does not yield a usable cookie.
- Every later request resolves the session to an identity with
  `KeyManager.authenticate_digest`: the same cached read, revocation and expiry checks as a
  bearer key, so revoking the key ends its sessions within the key cache's bound (at once on
  a broadcasting replica set).
- The cookie authenticates only together with `x-csrf-token` equal to the session's token
  (every method, reads too: the simplest rule with no exception to get wrong). A cross-site
  page can make the browser send the cookie (SameSite=Strict already stops that) but cannot
  read the token, which is only ever in a same-origin JSON answer.
- Sessions end after `max_age_s` (absolute, not sliding), on sign-out, or with their key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from gatewise.errors import UnauthorizedError
from gatewise.pipeline.core import Identity
from gatewise.security.keys import KeyManager, parse_key
from gatewise.storage.base import KVStore

COOKIE = "gw_console"
CSRF_HEADER = b"x-csrf-token"
_PREFIX = "console:session:"
_ID_RE_LEN = 43  # token_urlsafe(32)


class _Stored(msgspec.Struct, frozen=True):
    key_id: str
    digest: str  # sha256 hex of the secret (the key manager's comparison)
    csrf: str
    created: float
    expires: float


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    key_id: str
    csrf: str
    expires: float


def _store_key(session_id: str) -> str:
    return _PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


def cookie_value(raw: bytes) -> str | None:
    """The `gw_console` value of a `Cookie` header (the last one wins, as browsers send the
    most specific path first and there is only one path here), or None."""
    found = None
    for part in raw.split(b";"):
        name, sep, value = part.strip().partition(b"=")
        if sep and name == COOKIE.encode():
            found = value
    if found is None or len(found) != _ID_RE_LEN:
        return None
    try:
        text = found.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if all(c.isalnum() or c in "-_" for c in text) else None


class ConsoleSessions:
    def __init__(self, kv: KVStore, keys: KeyManager, *, max_age_s: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.keys = keys
        self.max_age_s = max_age_s
        self._clock = clock
        self._decode = msgspec.json.Decoder(_Stored).decode
        self._encode = msgspec.json.Encoder().encode

    async def create(self, token: str) -> tuple[Session, Identity]:
        """Signs `token` in; raises `UnauthorizedError` (the key manager reports the denial
        as a security event) for anything API authentication would refuse."""
        identity = await self.keys.authenticate(token)
        key_id = identity.key_id or "master"
        # What the key manager compares: a virtual key's secret part, or the master key.
        parsed = parse_key(token) if key_id != "master" else None
        secret = token if parsed is None else parsed[1]
        now = self._clock()
        session_id = secrets.token_urlsafe(32)
        stored = _Stored(key_id=key_id, digest=hashlib.sha256(secret.encode()).hexdigest(),
                         csrf=secrets.token_urlsafe(32), created=now,
                         expires=now + self.max_age_s)
        await self.kv.set(_store_key(session_id), self._encode(stored), ttl=self.max_age_s)
        return Session(session_id, key_id, stored.csrf, stored.expires), identity

    async def _load(self, session_id: str) -> _Stored | None:
        raw = await self.kv.get(_store_key(session_id))
        if raw is None:
            return None
        try:
            stored = self._decode(raw)
        except msgspec.DecodeError:
            return None
        return stored if self._clock() < stored.expires else None

    async def read(self, session_id: str) -> tuple[Session, Identity]:
        """The session and its key's identity now; `UnauthorizedError` when either ended."""
        stored = await self._load(session_id)
        if stored is None:
            raise UnauthorizedError("the console session has ended; sign in again")
        identity = await self.keys.authenticate_digest(stored.key_id,
                                                       bytes.fromhex(stored.digest))
        return Session(session_id, stored.key_id, stored.csrf, stored.expires), identity

    async def authenticate(self, session_id: str, csrf: bytes | None) -> Identity:
        """A request's identity from its cookie, provided it carries the session's CSRF
        token; anything else is a 401 that says which part was missing (never a value)."""
        if not csrf:
            raise UnauthorizedError("a console session needs the x-csrf-token header")
        session, identity = await self.read(session_id)
        if not hmac.compare_digest(csrf, session.csrf.encode()):
            raise UnauthorizedError("the x-csrf-token header does not match the session")
        return identity

    async def delete(self, session_id: str) -> bool:
        return await self.kv.delete(_store_key(session_id))
