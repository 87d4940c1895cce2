"""The audit log: an append-only, hash-chained record of every governance action.

Each record's hash is sha256 over a canonical JSON of (prev_hash, seq, ts, actor, action,
target, detail): sorted keys, no spaces, ASCII. Changing any field of a record, deleting a
record from the middle or reordering records breaks either a recomputed hash, a `prev_hash`
link or the gap-free `seq`, and `verify()` reports the first seq where that happens.

The store assigns seq and links the chain inside one transaction (`append_audit` takes
`chain_hash` as a callback), so replicas writing at once never fork it. Retention deletes the
oldest records; the oldest kept record's `prev_hash` then anchors the chain (it cannot be
checked against a deleted predecessor; everything after it still is).

Detail values must be JSON-able, and keys that name a secret (`secret`, `api_key`, `token`,
`password`, ...) are refused outright: the audit log is read by people who must not see them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gatewise.storage.base import AuditRecord, GovernanceStore

GENESIS_HASH = "0" * 64

_SECRET_KEY = re.compile(r"(?:^|_)(?:secret|api_?key|token|password|passwd|passphrase)$", re.I)


def chain_hash(prev_hash: str, seq: int, ts: float, actor: str, action: str, target: str | None,
               detail: dict[str, Any]) -> str:
    body = json.dumps({"prev_hash": prev_hash, "seq": seq, "ts": ts, "actor": actor,
                       "action": action, "target": target, "detail": detail},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(body.encode()).hexdigest()


def check_detail(detail: dict[str, Any]) -> None:
    """Raises ValueError if a key names a secret (at any depth) or a value is not JSON-able."""
    _check_keys(detail)
    try:
        json.dumps(detail, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit detail must be JSON-able: {type(exc).__name__}") from None


def _check_keys(value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("audit detail keys must be strings")
            if _SECRET_KEY.search(k.replace("-", "_")):
                raise ValueError(f"audit detail key {k!r} names a secret; secrets are never audited")
            _check_keys(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_keys(v)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


class AuditLog:
    def __init__(self, store: GovernanceStore, *, clock: Callable[[], float] = time.time,
                 page: int = 1000) -> None:
        self.store = store
        self._clock = clock
        self._page = page

    async def record(self, actor: str, action: str, target: str | None = None,
                     **detail: Any) -> AuditRecord:
        check_detail(detail)
        return await self.store.append_audit(self._clock(), actor, action, target, detail,
                                             chain_hash)

    async def entries(self, *, since_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        return await self.store.audit(since_seq=since_seq, limit=limit)

    async def verify(self) -> VerifyResult:
        """Walks the whole log in pages, recomputing every hash and checking every link."""
        checked = 0
        prev: AuditRecord | None = None
        since = 0
        while True:
            page = await self.store.audit(since_seq=since, limit=self._page)
            if not page:
                return VerifyResult(True, checked)
            for rec in page:
                if prev is None:
                    if rec.seq == 1 and rec.prev_hash != GENESIS_HASH:
                        return VerifyResult(False, checked, 1, "first record does not start the chain")
                elif rec.seq != prev.seq + 1:
                    return VerifyResult(False, checked, prev.seq + 1,
                                        f"expected seq {prev.seq + 1}, found {rec.seq}")
                elif rec.prev_hash != prev.hash:
                    return VerifyResult(False, checked, rec.seq, "prev_hash does not link")
                want = chain_hash(rec.prev_hash, rec.seq, rec.ts, rec.actor, rec.action,
                                  rec.target, rec.detail)
                if want != rec.hash:
                    return VerifyResult(False, checked, rec.seq, "hash does not match content")
                checked += 1
                prev = rec
            if prev is None or prev.seq <= since:  # a store returning out-of-order pages
                return VerifyResult(False, checked, since + 1, "store did not advance")
            since = prev.seq
