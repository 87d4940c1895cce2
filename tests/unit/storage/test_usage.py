"""`ledger_rows`: the one place a usage record becomes a database row, shared by the SQLite and
PostgreSQL ledgers; values in `LEDGER_COLUMNS` order, then `extra` as JSON text that reads
back as the same mapping."""

from __future__ import annotations

import json

from gatewise.storage.base import UsageRecord
from gatewise.storage.usage import LEDGER_COLUMNS, ledger_rows


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
