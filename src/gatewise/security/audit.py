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
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gatewise.security.audit_buffer import AuditBuffer
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
    """Raises ValueError if a key names a secret (at any depth) or a value is not JSON-able
    (what `json.dumps(allow_nan=False)` refuses: other types, NaN and infinities; nesting
    deeper than `_MAX_DEPTH` too). One walk, no encoding: it runs on the hot path for every
    security event (`AuditLog.record_later`)."""
    _check(detail, 0)


_MAX_DEPTH = 64
_SCALARS = (str, int, type(None))  # bool is an int


def _check(value: Any, depth: int) -> None:
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("audit detail must be JSON-able: ValueError (not a finite number)")
        return
    if depth >= _MAX_DEPTH:
        raise ValueError("audit detail must be JSON-able: nested too deep")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("audit detail keys must be strings")
            if _SECRET_KEY.search(k.replace("-", "_")):
                raise ValueError(f"audit detail key {k!r} names a secret; secrets are never audited")
            _check(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            _check(v, depth + 1)
    else:
        raise ValueError(f"audit detail must be JSON-able: TypeError ({type(value).__name__})")


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


class AuditLog:
    """`record` appends now (an administrator's action: the caller waits for it);
    `record_later` appends on the hot path and the record is written with the next batch
    (`AuditBuffer`, started by `start`). Every read and every direct append writes the
    pending records first, so the chain keeps the order records were made in and a reader
    sees every record made before its read."""

    def __init__(self, store: GovernanceStore, *, clock: Callable[[], float] = time.time,
                 page: int = 1000, flush_s: float = 0.5) -> None:
        self.store = store
        self._clock = clock
        self._page = page
        self.later = AuditBuffer(store, chain_hash, clock=clock, flush_s=flush_s)

    async def record(self, actor: str, action: str, target: str | None = None,
                     **detail: Any) -> AuditRecord:
        check_detail(detail)
        async with self.later.lock:
            await self.later.flush_locked()
            return await self.store.append_audit(self._clock(), actor, action, target, detail,
                                                 chain_hash)

    def record_later(self, actor: str, action: str, target: str | None = None,
                     **detail: Any) -> None:
        """Hot path, no awaits: checked now (a bad detail raises here), written in the next
        batch."""
        check_detail(detail)
        self.later.add(actor, action, target, detail)

    async def flush(self) -> int:
        """Writes what `record_later` holds; returns how many records."""
        return await self.later.flush()

    def start(self) -> None:
        """Starts writing `record_later`'s records in the background (needs a running loop)."""
        self.later.start()

    async def aclose(self) -> None:
        """Stops the background writes and writes what is left (the store stays open)."""
        await self.later.aclose()

    async def entries(self, *, since_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        await self.flush()
        return await self.store.audit(since_seq=since_seq, limit=limit)

    async def verify(self) -> VerifyResult:
        """Walks the whole log in pages, recomputing every hash and checking every link."""
        await self.flush()
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
