"""Ledger helpers every backend shares: record filters, grouping values, and the SQL spelling
of each `UsageGroup`, so memory, SQLite and PostgreSQL aggregate identically.

A missing value (no team, no key) groups under the empty string.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from operator import attrgetter
from typing import Any, cast

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.storage.base import USAGE_GROUPS, UsageGroup, UsageRecord, UsageRow
from gatewise.types.limits import END, parse_time_bound

# Record attribute per group (`day` is derived from `ts`).
GROUP_ATTRS: dict[str, str] = {"team": "team", "key": "key_id", "model": "alias",
                               "deployment": "deployment", "user": "user", "outcome": "outcome"}

LEDGER_COLUMNS = ("request_id", "ts", "tenant", "alias", "deployment", "outcome",
                  "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd",
                  "latency_ms", "ttft_ms", "key_id", "team", "user")

_columns = attrgetter(*LEDGER_COLUMNS)
_encode_json = msgspec.json.Encoder().encode


def ledger_rows(records: Sequence[UsageRecord]) -> list[tuple[Any, ...]]:
    """One tuple per record: `LEDGER_COLUMNS`' values, then `extra` as JSON text.

    Why this shape and these tools: the ledger's flusher builds a whole batch (256 records) on
    the event loop before handing it to the database, so its cost is a stall that a request in
    flight waits out. `getattr` per column plus `json.dumps` per record cost ~2 ms per batch,
    enough to put the Redis cache hit's p99 over 1 ms; `attrgetter` and msgspec's encoder
    (the journal already encodes every record with it, so `extra` is known to encode) cost a
    tenth of that. Built on the loop rather than in the database's worker thread on purpose:
    Python work in a worker holds the GIL, and the loop then waits up to the interpreter's
    switch interval (5 ms) to get it back, every time it wakes for I/O.
    """
    return [(*_columns(r), _encode_json(r.extra).decode()) for r in records]


def encode_records(records: Sequence[UsageRecord]) -> bytes:
    """The records as one JSON array of objects whose keys are the ledger's columns (plus
    `extra`, an object): how the PostgreSQL ledger hands a batch to the database, as one
    parameter it takes apart itself (`json_populate_recordset`).

    Why: the ledger's flusher runs on the event loop, so whatever it does in Python per
    record is a stall that every request in flight waits out. `ledger_rows` plus psycopg
    adapting ~4,000 values cost ~12 ms of CPU per 256-record batch; msgspec encodes the
    whole batch in one C call (and the ledger usually hands over its journal's lines,
    already encoded). Not for SQLite: its `json_each` + `json_extract` per column cost
    three times the CPU of binding the rows."""
    return _encode_json(records)


def utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def group_values(r: UsageRecord, group_by: Sequence[UsageGroup]) -> tuple[str, ...]:
    out = []
    for g in group_by:
        if g == "day":
            out.append(utc_day(r.ts))
        else:
            value = getattr(r, GROUP_ATTRS[g])
            out.append("" if value is None else str(value))
    return tuple(out)


def matches(r: UsageRecord, *, tenant: str | None = None, since: float | None = None,
            until: float | None = None, team: str | None = None, key_id: str | None = None,
            alias: str | None = None) -> bool:
    return ((tenant is None or r.tenant == tenant) and (since is None or r.ts >= since)
            and (until is None or r.ts < until) and (team is None or r.team == team)
            and (key_id is None or r.key_id == key_id) and (alias is None or r.alias == alias))


def where_clause(mark: str, *, tenant: str | None = None, since: float | None = None,
                 until: float | None = None, team: str | None = None, key_id: str | None = None,
                 alias: str | None = None) -> tuple[str, list[object]]:
    """` WHERE …` (or "") and its arguments; `mark` is the driver's placeholder (? or %s)."""
    where: list[str] = []
    args: list[object] = []
    for cond, value in (("tenant = ", tenant), ("ts >= ", since), ("ts < ", until),
                        ("team = ", team), ("key_id = ", key_id), ("alias = ", alias)):
        if value is not None:
            where.append(cond + mark)
            args.append(value)
    return (" WHERE " + " AND ".join(where) if where else ""), args


def check_groups(group_by: Sequence[str]) -> None:
    """Group names end up in SQL, so only the known ones pass."""
    for g in group_by:
        if g != "day" and g not in GROUP_ATTRS:
            raise ValueError(f"unknown usage grouping {g!r}")


# -- usage reports (the admin API and the CLI answer the same questions the same way) -------

# What `parse_group_by` accepts, as a regular expression (published in the OpenAPI document).
GROUP_BY_PATTERN = "^(?:(?:{0})(?:,(?:{0}))*)?{1}".format("|".join(sorted(USAGE_GROUPS)), END)


def parse_group_by(text: str) -> list[UsageGroup]:
    """`team,model,day` → groupings, refusing an unknown one by name; empty → one total."""
    groups = text.split(",") if text else []
    for g in groups:
        if g not in USAGE_GROUPS:
            raise InvalidRequestError(f"cannot group by {g!r}; use {', '.join(sorted(USAGE_GROUPS))}",
                                      param="group_by")
    return cast(list[UsageGroup], groups)


def parse_time(value: str | None, param: str) -> float | None:
    """A report bound: epoch seconds, a date (`2026-11-01`, UTC midnight) or a date and time
    (`2026-11-01T10:00`, `…:30Z`, `…+02:00`); the admin API publishes the same rule
    (`TIME_BOUND_PATTERN`), so it accepts exactly what its document says."""
    if not value:
        return None
    ts = parse_time_bound(value)
    if ts is None:
        raise InvalidRequestError(f"'{param}' must be epoch seconds, a date (YYYY-MM-DD) or a "
                                  "date and time (YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM])", param=param)
    return ts


def usage_table(rows: Sequence[UsageRow], group_by: Sequence[UsageGroup],
                cost_digits: int) -> list[list[Any]]:
    """Header, then one line per group: the groupings, then the sums."""
    head: list[Any] = [*group_by, "requests", "prompt_tokens", "completion_tokens",
                       "cached_tokens", "cost_usd"]
    return [head, *([*(r.group.get(g, "") for g in group_by), r.requests, r.prompt_tokens,
                     r.completion_tokens, r.cached_tokens, f"{r.cost_usd:.{cost_digits}f}"]
                    for r in rows)]
