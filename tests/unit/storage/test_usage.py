"""How usage records become what the ledgers send: `ledger_rows` (SQLite: values in
`LEDGER_COLUMNS` order, then `extra` as JSON text that reads back as the same mapping) and
`encode_records` (PostgreSQL: one JSON array whose objects are keyed by the ledger's columns,
with `extra` as an object; the database takes it apart by those names)."""

from __future__ import annotations

import json

from gatewise.storage.base import UsageRecord
from gatewise.storage.usage import LEDGER_COLUMNS, encode_records, ledger_rows


def test_each_record_is_an_object_keyed_by_every_column_then_extra() -> None:
    r = UsageRecord(request_id="req-1", ts=1733352000.1234567, tenant="acme", alias="m",
                    deployment="fake/echo", outcome="ok", prompt_tokens=3, completion_tokens=4,
                    cached_tokens=3, cost_usd=0.25, latency_ms=1.0, key_id="k1", team="blue",
                    extra={"cache": "hit", "saved_usd": 0.0001, "tags": ["a", "é"]})
    (obj,) = json.loads(encode_records([r]))
    assert set(obj) == {*LEDGER_COLUMNS, "extra"}
    assert [obj[c] for c in LEDGER_COLUMNS] == [getattr(r, c) for c in LEDGER_COLUMNS]
    assert obj["extra"] == r.extra and obj["ttft_ms"] is None and obj["user"] is None


def test_an_empty_extra_is_an_empty_object_and_no_records_an_empty_array() -> None:
    r = UsageRecord(request_id="req-2", ts=2.0, tenant="t", alias="m", deployment="d", outcome="ok")
    assert json.loads(encode_records([r]))[0]["extra"] == {}
    assert encode_records([]) == b"[]"


def test_a_row_holds_every_column_in_order_then_extra_as_json_text() -> None:
    r = UsageRecord(request_id="req-1", ts=1.5, tenant="acme", alias="m", deployment="fake/echo",
                    outcome="ok", prompt_tokens=3, completion_tokens=4, cached_tokens=3,
                    cost_usd=0.25, latency_ms=1.0, key_id="k1", team="blue",
                    extra={"cache": "hit", "saved_usd": 0.0001, "tags": ["a", "é"]})
    (row,) = ledger_rows([r])
    assert row[:-1] == tuple(getattr(r, c) for c in LEDGER_COLUMNS)
    assert isinstance(row[-1], str) and json.loads(row[-1]) == r.extra


def test_an_empty_extra_is_an_empty_object_and_no_records_no_rows() -> None:
    r = UsageRecord(request_id="req-2", ts=2.0, tenant="t", alias="m", deployment="d", outcome="ok")
    assert ledger_rows([r])[0][-1] == "{}"
    assert ledger_rows([]) == []
