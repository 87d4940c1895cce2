"""`PromptStore` on every backend (memory, SQLite, PostgreSQL): versions count up per name,
every version is kept, the latest is what a bare name means, deleted numbers are never
reused, and two replicas publishing one name at once never get the same number."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatewise.storage.prompts import MemoryPrompts
from gatewise.storage.sqlite_prompts import SQLitePrompts
from tests.storage.conftest import backend_details


def _make(name: str, d: dict[str, Any]) -> Any:
    if name == "memory":
        return MemoryPrompts()
    if name == "sqlite":
        return SQLitePrompts(d["path"] / "gatewise.db")
    from gatewise.storage.postgres_prompts import PostgresPrompts

    return PostgresPrompts(d["url"], schema=d["schema"])


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


@pytest.fixture
async def store(backend: tuple[str, dict[str, Any]]) -> AsyncIterator[Any]:
    s = _make(*backend)
    yield s
    await s.aclose()


async def test_versions_count_up_per_name_and_every_one_is_kept(store: Any) -> None:
    a1 = await store.add_prompt("greet", {"instructions": "v1"}, created=1.0, actor="master")
    a2 = await store.add_prompt("greet", {"instructions": "v2"}, created=2.0, actor="k1")
    b1 = await store.add_prompt("other", {"instructions": "x"}, created=3.0, actor="master")
    assert (a1.version, a2.version, b1.version) == (1, 2, 1)
    assert (await store.get_prompt("greet")).spec == {"instructions": "v2"}
    assert (await store.get_prompt("greet", 1)).spec == {"instructions": "v1"}
    assert (await store.get_prompt("greet", 1)).actor == "master"
    assert await store.get_prompt("greet", 3) is None
    assert await store.get_prompt("nope") is None
    assert [r.version for r in await store.prompt_versions("greet")] == [1, 2]
    assert [(r.name, r.version) for r in await store.list_prompts()] == [("greet", 2), ("other", 1)]


async def test_a_deleted_version_number_is_never_reused(store: Any) -> None:
    await store.add_prompt("p", {"instructions": "1"}, created=1.0, actor="a")
    await store.add_prompt("p", {"instructions": "2"}, created=2.0, actor="a")
    assert await store.delete_prompt("p", 2) == 1
    assert (await store.get_prompt("p")).version == 1
    again = await store.add_prompt("p", {"instructions": "3"}, created=3.0, actor="a")
    assert again.version == 3
    assert await store.delete_prompt("p") == 2
    assert await store.get_prompt("p") is None
    assert await store.delete_prompt("p") == 0


async def test_nested_documents_come_back_as_they_went_in(store: Any) -> None:
    spec = {"messages": [{"role": "user", "content": "Hi {{ name }} ü"}],
            "variables": {"name": {"type": "string", "required": True}},
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "x", "schema": {"type": "object"}}}}
    await store.add_prompt("doc", spec, created=1.0, actor="a")
    assert (await store.get_prompt("doc")).spec == spec


@pytest.fixture(params=["sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return backend_details(request, tmp_path)


async def test_two_replicas_publishing_at_once_never_share_a_number(
        shared: tuple[str, dict[str, Any]]) -> None:
    a, b = _make(*shared), _make(*shared)
    try:
        recs = await asyncio.gather(*(
            s.add_prompt("race", {"instructions": str(i)}, created=float(i), actor="a")
            for i, s in enumerate([a, b] * 10)))
        assert sorted(r.version for r in recs) == list(range(1, 21))
        assert len(await a.prompt_versions("race")) == 20
    finally:
        await a.aclose()
        await b.aclose()
