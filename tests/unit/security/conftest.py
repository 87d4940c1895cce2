"""Shared parts for the security tests: a settable clock, a recording event sink, and a
governance store that counts reads (to prove what the key cache saves)."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.security.audit import AuditLog
from gatewise.security.keys import KeyManager
from gatewise.storage.base import KeyRecord
from gatewise.storage.memory_governance import MemoryGovernance


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, kind: str, action: str, *, request_id: str | None = None,
             tenant: str | None = None, key_id: str | None = None,
             detail: dict[str, Any] | None = None) -> None:
        self.seen.append((kind, action, {"request_id": request_id, "tenant": tenant,
                                         "key_id": key_id, **(detail or {})}))


class CountingStore(MemoryGovernance):
    def __init__(self) -> None:
        super().__init__()
        self.key_reads = 0

    async def get_key(self, key_id: str) -> KeyRecord | None:
        self.key_reads += 1
        return await super().get_key(key_id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def audit(store: CountingStore, clock: Clock) -> AuditLog:
    return AuditLog(store, clock=clock)


@pytest.fixture
def keys(store: CountingStore, audit: AuditLog, clock: Clock, events: Events) -> KeyManager:
    return KeyManager(store, audit, cache_s=5.0, clock=clock, events=events)
