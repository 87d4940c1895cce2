"""The storage seam: tiny protocols that everything shared (caches, budgets, rate limits, the
usage ledger, conversations) is written against.

Code above a store never knows which backend it has: memory and SQLite serve a single process
(the embedded default); Redis and PostgreSQL implement the same protocols for many replicas.
Every key a caller passes is already scoped by tenant (see `Identity`); stores add nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


class KVStore(Protocol):
    """Bytes by key with an optional time-to-live (seconds)."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def delete_prefix(self, prefix: str) -> int:
        """Invalidation by pattern: removes every key starting with `prefix`."""
        ...

    # Sets and numeric fields beside the values, under the same keys (`delete` and
    # `delete_prefix` remove them too): an index (a cache tag's entry keys) and counters that
    # every replica adds to (cache statistics), one round trip each on a shared backend.
    async def add_members(self, key: str, members: Sequence[str],
                          ttl: float | None = None) -> None:
        """Adds to the set at `key`; with `ttl` the set lives at least that long from now
        (a later, shorter ttl never shortens it), without it forever."""
        ...

    async def members(self, key: str) -> list[str]:
        """The set at `key` (empty when there is none or it expired), in no order."""
        ...

    async def incr_fields(self, key: str, deltas: Mapping[str, float]) -> None:
        """Adds each delta to its field of the numeric map at `key` (created at 0)."""
        ...

    async def fields(self, key: str) -> dict[str, float]: ...

    async def purge_expired(self) -> int:
        """Removes expired values and sets now (backends that expire on their own return 0);
        returns how many went. Run by a maintenance job, so reads never pay for it."""
        ...

    async def aclose(self) -> None: ...


class TrimmableKV(Protocol):
    """A shared key-value store that can be held to a size (the response cache's
    `max_entries` on SQLite, PostgreSQL and Redis; the in-process cache evicts on its own)."""

    async def trim(self, prefix: str, keep: int) -> int:
        """Keeps at most `keep` values under `prefix` (sets and counters are not counted),
        removing those that would expire soonest (no expiry counts as latest): with one TTL,
        the oldest go first. Returns how many went. Run by a maintenance job."""
        ...


@dataclass(frozen=True, slots=True)
class Reservation:
    key: str
    amount: float
    id: str


class CounterStore(Protocol):
    """Atomic counters for budgets and quotas: reserve the worst case before a request, settle
    to the real amount after, release on failure. `reserve` is all-or-nothing under
    concurrency, so many requests racing for the last unit cannot overspend."""

    async def reserve(self, key: str, amount: float, limit: float,
                      ttl: float | None = None) -> Reservation | None:
        """Adds `amount` if the total stays ≤ `limit`; None (nothing added) otherwise."""
        ...

    async def settle(self, reservation: Reservation, actual: float) -> float:
        """Replaces the reserved amount by the actual one; returns the new total."""
        ...

    async def release(self, reservation: Reservation) -> float: ...

    async def value(self, key: str) -> float: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class UsageRecord:
    """One request, whatever its outcome; written to the ledger off the hot path."""

    request_id: str
    ts: float
    tenant: str
    alias: str
    deployment: str
    outcome: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    key_id: str | None = None
    team: str | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


UsageGroup = Literal["team", "key", "model", "deployment", "user", "day", "outcome"]
USAGE_GROUPS: frozenset[str] = frozenset(
    ("team", "key", "model", "deployment", "user", "day", "outcome"))


@dataclass(slots=True)
class UsageRow:
    """One group of an aggregate usage query (`group` maps each grouping to its value)."""

    group: dict[str, str]
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0


class LedgerStore(Protocol):
    async def append(self, records: Sequence[UsageRecord], encoded: bytes | None = None) -> int:
        """Stores records; a record whose request_id is already stored is skipped (so a
        replayed journal never double-counts). Returns how many were new.

        `encoded`, when given, is `gatewise.storage.usage.encode_records(records)` already
        made (the ledger joins its journal's lines): stores that send a batch as JSON use it
        rather than encode every record a second time on the event loop."""
        ...

    async def query(self, *, tenant: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 1000,
                    team: str | None = None, key_id: str | None = None,
                    alias: str | None = None) -> list[UsageRecord]: ...

    async def aggregate(self, group_by: Sequence[UsageGroup], *, since: float | None = None,
                        until: float | None = None, team: str | None = None,
                        key_id: str | None = None) -> list[UsageRow]:
        """Sums per group; `day` groups by the UTC date (YYYY-MM-DD) of `ts`, `model` by alias."""
        ...

    async def delete_before(self, ts: float, limit: int) -> int:
        """Retention: deletes at most `limit` records older than `ts`; returns how many."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WindowResult:
    allowed: bool
    used: float        # in the window, including this hit when allowed
    limit: float
    # seconds until this hit would fit (when denied) or one more unit fits (when allowed);
    # bucketed backends (Redis, PostgreSQL) may add one bucket
    reset_s: float


class WindowStore(Protocol):
    """Sliding-window counters for rate limits (RPM/TPM), shared across replicas on Redis."""

    async def hit(self, key: str, amount: float, limit: float, window_s: float) -> WindowResult:
        """Adds `amount` at now if the window's total stays ≤ `limit` (nothing added otherwise)."""
        ...

    async def hit_many(self, hits: Sequence[tuple[str, float, float]],
                       window_s: float) -> list[WindowResult]:
        """`hit(key, amount, limit, window_s)` for each (key, amount, limit) in turn, stopping
        after the first refusal: one result per window checked, so a refusal is the last one.
        Windows admitted before it keep their amounts (as separate hits would). Redis answers
        it in one round trip (one script); the others call `hit_in_turn`."""
        ...

    async def add(self, key: str, amount: float, window_s: float) -> None:
        """Adds unconditionally (e.g. the real token count after a response, when it exceeded
        the pre-send estimate)."""
        ...

    async def aclose(self) -> None: ...


async def hit_in_turn(store: WindowStore, hits: Sequence[tuple[str, float, float]],
                      window_s: float) -> list[WindowResult]:
    """`WindowStore.hit_many` as separate `hit`s (for stores where a call costs no round trip)."""
    out: list[WindowResult] = []
    for key, amount, limit in hits:
        r = await store.hit(key, amount, limit, window_s)
        out.append(r)
        if not r.allowed:
            break
    return out


# -- governance records: keys, teams, budgets, audit, provider credentials ------------------

@dataclass(slots=True)
class TeamRecord:
    id: str
    name: str
    models: list[str] = field(default_factory=list)     # empty = every model
    rpm: int | None = None
    tpm: int | None = None
    created: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class KeyRecord:
    """A virtual API key. Only `secret_hash` of the secret is ever stored."""

    id: str                       # public, appears in logs, the ledger and the audit log
    secret_hash: str              # hex sha256 of the secret (256-bit random, so no slow hash)
    name: str
    role: str                     # admin | team_admin | member | viewer
    team: str | None = None
    user: str | None = None
    models: list[str] = field(default_factory=list)      # empty = the team's models
    permissions: list[str] = field(default_factory=list)  # empty = the role's permissions
    created: float = 0.0
    expires: float | None = None
    revoked: float | None = None
    rotated_to: str | None = None  # id of the key that replaced this one
    rpm: int | None = None
    tpm: int | None = None
    last_used: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BudgetRecord:
    """A spending cap: scope is key | team | user, `subject` its id."""

    id: str
    scope: str
    subject: str
    period: str                   # day | month | total
    limit_usd: float | None = None
    limit_tokens: int | None = None
    hard: bool = True
    created: float = 0.0


@dataclass(slots=True)
class AuditRecord:
    seq: int                      # 1, 2, 3... assigned by the store, gap-free
    ts: float
    actor: str                    # key id, "master", "cli:<user>", "system"
    action: str                   # e.g. key.create, key.revoke, auth.denied, budget.exceeded
    target: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit record before the store gives it its place in the chain (`append_audit_many`)."""

    ts: float
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


@dataclass(slots=True)
class CredentialRecord:
    """A provider credential, encrypted (AES-GCM); `ciphertext` is nonce + sealed secret."""

    name: str                     # referenced from config as `vault:<name>`
    provider: str
    ciphertext: bytes
    created: float
    rotated: float
    rotate_every_days: int = 90
    last_used: float | None = None
    uses: int = 0
    last_rotation_error: str | None = None
    # Automated rotation (`gatewise.security.rotation`): the key before the last rotation,
    # still valid upstream until `previous_until` (the overlap window), then dropped.
    previous_ciphertext: bytes | None = None
    previous_until: float | None = None
    # The provider-side id of the current and the previous key (e.g. an OpenAI service
    # account), so the old one can be deleted through the admin API; public ids, no secrets.
    key_id: str | None = None
    previous_key_id: str | None = None


class GovernanceStore(Protocol):
    """Keys, teams, budgets, audit and credentials: small tables, strongly consistent, shared
    by every replica (SQLite for one host, PostgreSQL for many)."""

    async def put_team(self, team: TeamRecord) -> None: ...
    async def get_team(self, team_id: str) -> TeamRecord | None: ...
    async def list_teams(self) -> list[TeamRecord]: ...
    async def delete_team(self, team_id: str) -> bool: ...

    async def put_key(self, key: KeyRecord) -> None:
        """Insert or replace by id."""
        ...

    async def get_key(self, key_id: str) -> KeyRecord | None: ...
    async def list_keys(self, team: str | None = None) -> list[KeyRecord]: ...
    async def touch_keys(self, last_used: dict[str, float]) -> None:
        """Batched last-used timestamps (written off the hot path)."""
        ...

    async def put_budget(self, budget: BudgetRecord) -> None: ...
    async def list_budgets(self, scope: str | None = None,
                           subject: str | None = None) -> list[BudgetRecord]: ...
    async def delete_budget(self, budget_id: str) -> bool: ...

    async def append_audit(self, ts: float, actor: str, action: str, target: str | None,
                           detail: dict[str, Any],
                           chain: Callable[[str, int, float, str, str, str | None,
                                            dict[str, Any]], str]) -> AuditRecord:
        """Appends atomically: reads the last record's hash, assigns seq = last + 1 and
        hash = chain(prev_hash, seq, ts, actor, action, target, detail), all in one
        transaction, so concurrent writers (many replicas) never fork the chain. The first
        record's prev_hash is 64 zeros."""
        ...

    async def append_audit_many(self, entries: Sequence[AuditEntry],
                                chain: Callable[[str, int, float, str, str, str | None,
                                                 dict[str, Any]], str]) -> list[AuditRecord]:
        """`append_audit` for a batch, in one transaction: the entries get consecutive seqs in
        the order given, or (on an error) none of them is stored."""
        ...

    async def audit(self, *, since_seq: int = 0, limit: int = 1000) -> list[AuditRecord]: ...
    async def delete_audit_before(self, ts: float, limit: int) -> int:
        """Retention. The chain stays verifiable: the oldest kept record's prev_hash is the
        anchor a verifier starts from."""
        ...

    async def put_credential(self, cred: CredentialRecord) -> None: ...
    async def get_credential(self, name: str) -> CredentialRecord | None: ...
    async def list_credentials(self) -> list[CredentialRecord]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class ConversationInfo:
    """What a store knows about one conversation besides its turns. `summarised` oldest
    messages are replaced, in prompts, by `summary` (they stay stored, for the API)."""

    id: str
    scope: str                    # the tenant (team) that owns it
    created: float
    updated: float
    turns: int                    # messages stored
    summary: str | None = None
    summarised: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


class ConversationStore(Protocol):
    """Messages of conversations as JSON-able dicts (OpenAI messages), oldest first, per
    `scope` (the caller's tenant): the same id in two scopes is two conversations.

    `ttl` (seconds) makes a conversation expire when idle: each append renews it. Times are
    the store's injected clock (SQL, memory) or the server's (Redis TTL)."""

    async def append(self, scope: str, conversation: str, messages: Sequence[dict[str, Any]],
                     *, ttl: float | None = None,
                     metadata: dict[str, Any] | None = None) -> int:
        """Appends in order (atomically); merges `metadata`; returns the new message count."""
        ...

    async def history(self, scope: str, conversation: str, *, start: int = 0,
                      limit: int | None = None) -> list[dict[str, Any]]:
        """Messages from index `start` on; `limit` keeps only the newest ones of those."""
        ...

    async def info(self, scope: str, conversation: str) -> ConversationInfo | None: ...

    async def list(self, scope: str, *, limit: int = 100) -> list[ConversationInfo]:
        """The scope's conversations, most recently updated first."""
        ...

    async def set_summary(self, scope: str, conversation: str, summary: str,
                          summarised: int) -> None:
        """Keeps a summary of the oldest `summarised` messages (no-op if it does not exist)."""
        ...

    async def delete(self, scope: str, conversation: str) -> bool:
        """Removes turns, summary and metadata; True if it existed."""
        ...

    async def delete_before(self, ts: float, limit: int) -> int:
        """Retention: deletes at most `limit` conversations not updated since `ts`."""
        ...

    async def aclose(self) -> None: ...


class StoreUnavailableError(Exception):
    """A shared backend could not be reached. Raised by stores whose callers can run degraded
    (pub/sub, shared breakers), so they catch one type whatever the backend is."""


class Subscription(Protocol):
    """A running subscription (see `PubSub.subscribe`)."""

    async def wait_ready(self) -> None:
        """Returns once subscribed, or after the first failed try (the subscription keeps
        retrying in the background): start-up never blocks on a shared backend. Callers
        bound the wait themselves (`asyncio.timeout`)."""
        ...

    async def aclose(self) -> None:
        """Stops listening; returns promptly even if the backend hangs."""
        ...


class PubSub(Protocol):
    """Fire-and-forget messages to every subscriber of a channel: replicas telling each other
    that a key was revoked or a breaker opened. Delivery is at most once, so a subscriber
    learns through `on_connect(resumed=True)` that it may have missed messages while it was
    disconnected, and must re-read whatever it caches."""

    async def publish(self, channel: str, message: str) -> None:
        """Sends `message` to every current subscriber; `StoreUnavailableError` if the backend
        cannot be reached (the message is then lost)."""
        ...

    def subscribe(self, channel: str, on_message: Callable[[str], None], *,
                  on_connect: Callable[[bool], Awaitable[None]] | None = None,
                  on_error: Callable[[BaseException], None] | None = None,
                  tick_s: float | None = None,
                  on_tick: Callable[[], Awaitable[None]] | None = None) -> Subscription:
        """Starts listening (needs a running loop). `on_connect(resumed)` runs after every
        (re)subscription, `resumed` being True after a lost connection; `on_tick` runs every
        `tick_s` while connected (a periodic resync). A `StoreUnavailableError` raised by
        either counts as a lost connection: `on_error` is told and the subscription retries
        with backoff."""
        ...

    async def aclose(self) -> None:
        """Stops every subscription and releases the connection."""
        ...
