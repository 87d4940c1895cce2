"""Storage protocols and their backends (memory and SQLite here; Redis and PostgreSQL behind
the same protocols)."""

from gatewise.storage.base import (
    ConversationStore,
    CounterStore,
    KVStore,
    LedgerStore,
    Reservation,
    UsageRecord,
)

__all__ = ["ConversationStore", "CounterStore", "KVStore", "LedgerStore", "Reservation",
           "UsageRecord"]
