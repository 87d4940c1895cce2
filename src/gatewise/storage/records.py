"""Governance records as JSON documents, for the SQL backends.

Why documents: the records are small, read whole, and grow fields over time; a JSON column
plus the few columns we filter on (a key's team, a budget's scope and subject) keeps the
schema stable when a field is added. Bytes (a credential's ciphertext) travel as base64.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any, TypeVar

from gatewise.storage.base import (
    AuditRecord,
    BudgetRecord,
    CredentialRecord,
    KeyRecord,
    TeamRecord,
)

R = TypeVar("R", TeamRecord, KeyRecord, BudgetRecord, CredentialRecord)

ZERO_HASH = "0" * 64
_CREDENTIAL_BYTES = ("ciphertext", "previous_ciphertext")


def to_doc(record: TeamRecord | KeyRecord | BudgetRecord | CredentialRecord) -> str:
    data = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    for k, v in data.items():
        if isinstance(v, bytes):
            data[k] = base64.b64encode(v).decode("ascii")
    return json.dumps(data, separators=(",", ":"))


def from_doc(cls: type[R], doc: str | dict[str, Any]) -> R:
    data = json.loads(doc) if isinstance(doc, str) else dict(doc)
    names = {f.name for f in dataclasses.fields(cls)}
    data = {k: v for k, v in data.items() if k in names}  # tolerate fields from newer versions
    if cls is CredentialRecord:
        for k in _CREDENTIAL_BYTES:
            if isinstance(data.get(k), str):
                data[k] = base64.b64decode(data[k])
    return cls(**data)


def audit_row(seq: int, ts: float, actor: str, action: str, target: str | None,
              detail: dict[str, Any], prev_hash: str, hash_: str) -> AuditRecord:
    return AuditRecord(seq=seq, ts=ts, actor=actor, action=action, target=target,
                       detail=detail, prev_hash=prev_hash, hash=hash_)
