"""The PostgreSQL stores' backstop: a value PostgreSQL cannot take (a NUL byte in text, a
number out of a column's range, a negative LIMIT) is the caller's input, so it surfaces as an
`InvalidRequestError` (a 400 over HTTP), never as psycopg's `DataError` (a 500). The admin
API and the CLI refuse such values before any store sees them; this holds for every other
caller (the library, a future route) too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gatewise.errors import InvalidRequestError
from gatewise.storage.base import BudgetRecord, TeamRecord


@pytest.fixture
async def stores(pg_url: str, pg_schema: str) -> AsyncIterator[tuple[Any, Any]]:
    from gatewise.storage.postgres import PgDatabase, PostgresLedger
    from gatewise.storage.postgres_governance import PostgresGovernance

    db = PgDatabase(pg_url, schema=pg_schema)
    yield PostgresGovernance(db), PostgresLedger(db)
    await db.close()


async def test_a_nul_byte_in_an_id_or_a_document_is_an_invalid_request(
        stores: tuple[Any, Any]) -> None:
    gov, _ = stores
    with pytest.raises(InvalidRequestError) as info:
        await gov.get_key("\x00")
    assert info.value.status == 400 and info.value.code == "invalid_value"
    assert "\x00" not in info.value.message
    with pytest.raises(InvalidRequestError):
        await gov.get_team("red\x00")
    with pytest.raises(InvalidRequestError):
        await gov.put_budget(BudgetRecord(id="bud_1", scope="team", subject="a\x00",
                                          period="month", limit_usd=1.0))
    with pytest.raises(InvalidRequestError):
        await gov.list_budgets("team", "\x00")
    # Nothing was stored, and the store still works (the connection went back to the pool).
    assert await gov.list_budgets() == []
    await gov.put_team(TeamRecord(id="red", name="Red"))
    assert (await gov.get_team("red")) is not None


async def test_a_value_out_of_a_clauses_range_is_an_invalid_request(
        stores: tuple[Any, Any]) -> None:
    _, ledger = stores
    with pytest.raises(InvalidRequestError) as info:
        await ledger.query(limit=-1)
    assert "SQLSTATE 2201W" in info.value.message  # invalid_row_count_in_limit_clause
    with pytest.raises(InvalidRequestError):
        await ledger.query(team="\x00")
    assert await ledger.query(limit=10) == []
