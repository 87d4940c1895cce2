"""Screen snapshots of the REPL (`pytest-textual-snapshot`, SVGs under `__snapshots__/`): a turn's
timeline as the user sees it, and a turn that failed over. Timings are masked (`…`), which is
all that varies between runs: tokens, cost, deployments and text are the fake upstream's real,
deterministic figures. After an intended change of the screen, review and accept the new
pictures with `pytest tests/repl/test_snapshots.py --snapshot-update`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from tests.fakes.server import FakeServer
from tests.repl.conftest import in_process, make_app_for

SIZE = (110, 32)


def _turns(*lines: str) -> Callable[[Pilot[None]], Any]:
    async def run(pilot: Pilot[None]) -> None:
        app: Any = pilot.app
        for line in lines:
            app.query_one("#prompt", Input).value = line
            await pilot.press("enter")
            if app.turn_worker is not None:
                await app.turn_worker.wait()
            await pilot.pause()
        app.flush_stream()
        await pilot.pause()

    return run


def test_a_turns_timeline(snap_compare: Any, upstream: FakeServer, tmp_path: Path) -> None:
    app = make_app_for(in_process(upstream, tmp_path), tmp_path, conversation="c_snapshot",
                       mask_timings=True)
    assert snap_compare(app, terminal_size=SIZE,
                        run_before=_turns("hello there", "/system be brief", "and again", "/cost"))


def test_a_failover_and_an_error(snap_compare: Any, upstream: FakeServer, tmp_path: Path) -> None:
    app = make_app_for(in_process(upstream, tmp_path), tmp_path, conversation="c_snapshot",
                       mask_timings=True)
    assert snap_compare(app, terminal_size=SIZE,
                        run_before=_turns("/model flaky", "are you there", "/model broken",
                                          "fail now"))
