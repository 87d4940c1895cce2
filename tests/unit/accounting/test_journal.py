"""The usage journal: what was recorded survives the writer's death, replays never duplicate,
a torn last line is skipped, and a live process's segment is never taken."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from gatewise.accounting.journal import Journal
from gatewise.storage.base import UsageRecord
from gatewise.storage.memory import MemoryLedger
from gatewise.storage.sqlite import SQLiteLedger


def jnl(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jnl"))


def rec(i: int) -> UsageRecord:
    return UsageRecord(request_id=f"req_{i}", ts=1000.0 + i, tenant="t", alias="chat",
                       deployment="d", outcome="success", prompt_tokens=i, cost_usd=0.5,
                       extra={"n": i})


async def test_records_of_a_dead_writer_are_replayed_then_deleted(tmp_path: Path) -> None:
    writer = Journal(tmp_path)
    for i in range(3):
        writer.write(rec(i))
    writer.close(delete=False)  # the fds (and locks) go, as when the process dies
    store = MemoryLedger()
    assert await Journal(tmp_path).replay(store) == 3
    got = sorted((await store.query()), key=lambda r: r.request_id)
    assert [r.request_id for r in got] == ["req_0", "req_1", "req_2"]
    assert got[2].prompt_tokens == 2 and got[2].extra == {"n": 2}
    assert jnl(tmp_path) == []


async def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    writer = Journal(tmp_path)
    writer.write(rec(1))
    writer.write(rec(2))
    writer.close(delete=False)
    (seg,) = jnl(tmp_path)
    with seg.open("ab") as f:
        f.write(b'{"request_id":"req_3","ts":10')  # died mid-write
    store = MemoryLedger()
    assert await Journal(tmp_path).replay(store) == 2
    assert {r.request_id for r in await store.query()} == {"req_1", "req_2"}


async def test_replaying_records_already_in_the_store_adds_nothing(tmp_path: Path) -> None:
    store = SQLiteLedger(tmp_path / "ledger.db")
    await store.append([rec(1), rec(2)])
    writer = Journal(tmp_path / "j")
    for i in (1, 2, 3):
        writer.write(rec(i))
    writer.close(delete=False)
    assert await Journal(tmp_path / "j").replay(store) == 1
    assert len(await store.query()) == 3
    await store.aclose()


async def test_a_segment_held_open_by_its_writer_is_not_taken(tmp_path: Path) -> None:
    live = Journal(tmp_path)
    live.write(rec(1))
    store = MemoryLedger()
    assert await Journal(tmp_path).replay(store) == 0
    assert len(jnl(tmp_path)) == 1
    live.close(delete=True)
    assert jnl(tmp_path) == []


async def test_commit_deletes_sealed_segments_and_keeps_the_live_one(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.write(rec(1))
    mark = j.seal()
    j.write(rec(2))  # goes to a new segment
    assert len(j.segments()) == 2
    j.commit(mark)
    (left,) = j.segments()
    assert b"req_2" in left.read_bytes() and b"req_1" not in left.read_bytes()
    j.close(delete=True)


async def test_fsync_mode_writes_the_same_records(tmp_path: Path) -> None:
    j = Journal(tmp_path, fsync=True)
    j.write(rec(7))
    j.close(delete=False)
    store = MemoryLedger()
    assert await Journal(tmp_path).replay(store) == 1


_CHILD = textwrap.dedent("""
    import sys
    from gatewise.accounting.journal import Journal
    from gatewise.storage.base import UsageRecord
    j = Journal(sys.argv[1])
    for i in range(5):
        j.write(UsageRecord(request_id=f"child_{i}", ts=1.0, tenant="t", alias="a",
                            deployment="d", outcome="success"))
    print("ready", flush=True)
    sys.stdin.read()
""")


async def test_another_live_process_keeps_its_segment_until_kill_9_then_nothing_is_lost(
        tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, str(tmp_path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert (await child.stdout.readline()).strip() == b"ready"
        store = MemoryLedger()
        assert await Journal(tmp_path).replay(store) == 0
        assert len(jnl(tmp_path)) == 1
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 10)
        assert await Journal(tmp_path).replay(store) == 5
        assert jnl(tmp_path) == []
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def test_a_store_failure_during_replay_keeps_the_segment(tmp_path: Path) -> None:
    class Down:
        async def append(self, records: object) -> int:
            raise ConnectionError("store down")

    writer = Journal(tmp_path)
    writer.write(rec(1))
    writer.close(delete=False)
    with pytest.raises(ConnectionError):
        await Journal(tmp_path).replay(Down())
    assert len(jnl(tmp_path)) == 1
    assert await Journal(tmp_path).replay(MemoryLedger()) == 1
