"""The REPL's two responsiveness targets, measured on the real app (headless Textual) in front of
a real in-process gateway and the fake OpenAI upstream over loopback HTTP.

    .venv/bin/python bench/repl_bench.py            # about 40 s
    .venv/bin/python bench/repl_bench.py --quick    # about 20 s

The fake upstream runs in a process of its own (as a real upstream would).

1. Keystroke echo while a step streams (target <= 50 ms): a key is handed to the app the way
   the terminal driver hands it one (`driver.send_message(Key)`), and the echo is the first
   screen update (`App._display`, which the driver turns into terminal output) after the input
   line holds the character. Measured while the fake upstream streams ~100 chunks/s into the
   timeline, and, as the baseline of the same run, with nothing running.
2. First timeline block after Enter (target <= 100 ms, before the model answers): Enter is
   sent the same way; the time to the screen update that shows the turn's first block (its
   input and pipeline step), and to the one that shows the gateway's first own step (the
   route decision), while the upstream holds its answer back for 1.5 s (`slow` model).

Prints a table of medians and 95th percentiles; exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.openai_fake import make_app
from tests.fakes.server import FakeServer
from tests.repl.conftest import in_process, make_app_for
from textual import events

from gatewise.cli.repl.app import ReplApp
from gatewise.cli.repl.widgets import BlockView

ECHO_TARGET_MS = 50.0
FIRST_BLOCK_TARGET_MS = 100.0


class Screenwatch:
    """Records when the app hands a screen update to its driver."""

    def __init__(self, app: ReplApp) -> None:
        self.app = app
        self.waiters: list[tuple[Any, asyncio.Future[float]]] = []
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            now = time.perf_counter()
            original(screen, renderable)
            if renderable is None:
                return
            for cond, fut in list(self.waiters):
                if not fut.done() and cond():
                    fut.set_result(now)
                    self.waiters.remove((cond, fut))

        app._display = display  # type: ignore[method-assign]

    def next_update(self, cond: Any) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters.append((cond, fut))
        return fut


@contextlib.contextmanager
def upstream_process() -> Iterator[FakeServer]:
    """The fake upstream in a process of its own, as a real one would be (in this process its
    thread would compete with the app for the interpreter). Stopped on the way out."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]);"
            "from tests.fakes.openai_fake import make_app;"
            "from tests.fakes.server import FakeServer;"
            "srv = FakeServer(make_app).__enter__(); print(srv.port, flush=True);"
            "sys.stdin.read()")
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, "-c", code, root], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield FakeServer(make_app, port=port)  # its address only; never entered here
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def on_screen(app: ReplApp, kind: str, turn: int) -> bool:
    """A block of `kind` in `turn` is mounted and laid out on the screen (not merely added)."""
    return any(v.block.kind == kind and v.block.turn == turn and v.region.area > 0
               for v in app.query(BlockView))


async def until(cond: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.005)
    raise TimeoutError("the app did not get there")


def send_key(app: ReplApp, key: str, char: str | None) -> float:
    event = events.Key(key, char)
    event.set_sender(app)
    assert app._driver is not None
    t0 = time.perf_counter()
    app._driver.send_message(event)
    return t0


async def echo_latencies(app: ReplApp, watch: Screenwatch, n: int) -> list[float]:
    prompt = app.query_one("#prompt")
    out = []
    for i in range(n):
        ch = "abcdefghij"[i % 10]
        before = len(prompt.value)  # type: ignore[attr-defined]
        fut = watch.next_update(lambda b=before: len(prompt.value) > b)  # type: ignore[attr-defined]
        t0 = send_key(app, ch, ch)
        shown = await asyncio.wait_for(fut, 5)
        out.append((shown - t0) * 1000)
        await asyncio.sleep(0.037)  # keys at a typist's pace, out of phase with the refresh
    prompt.value = ""  # type: ignore[attr-defined]
    return out


async def main(quick: bool) -> int:
    n_keys, n_turns = (40, 8) if quick else (100, 20)
    rows: list[tuple[str, list[float], float]] = []
    with upstream_process() as upstream, tempfile.TemporaryDirectory() as tmp:
        app = make_app_for(in_process(upstream, Path(tmp)), Path(tmp), conversation="c_bench")
        async with app.run_test(size=(120, 50)) as pilot:
            watch = Screenwatch(app)
            await pilot.pause()
            idle = await echo_latencies(app, watch, n_keys)
            rows.append(("echo, idle (baseline)", idle, ECHO_TARGET_MS))
            app.runner.answer_model = "endless"
            await pilot.press("s", "enter")
            await until(lambda: any(b.kind == "answer" for b in app.blocks))
            await asyncio.sleep(0.5)  # the answer is long enough to wrap over several lines
            busy = await echo_latencies(app, watch, n_keys)
            rows.append(("echo, while streaming", busy, ECHO_TARGET_MS))
            streamed = len(next(b.text for b in app.blocks if b.kind == "answer"))
            await pilot.press("ctrl+c")
            await until(lambda: not app.running)
            app.runner.answer_model = "slow"  # the upstream answers after 1.5 s
            first, gateway_first = [], []
            for i in range(n_turns):
                await pilot.press("/", "c", "l", "e", "a", "r", "enter")  # a short timeline
                app.query_one("#prompt").value = f"question {i}"  # type: ignore[attr-defined]
                turn = app.turns + 1
                f1 = watch.next_update(lambda t=turn: on_screen(app, "step", t))
                f2 = watch.next_update(lambda t=turn: on_screen(app, "route", t))
                t0 = send_key(app, "enter", "\r")
                first.append((await asyncio.wait_for(f1, 5) - t0) * 1000)
                gateway_first.append((await asyncio.wait_for(f2, 5) - t0) * 1000)
                await pilot.press("ctrl+c")
                await until(lambda: not app.running)
            rows.append(("first block after Enter", first, FIRST_BLOCK_TARGET_MS))
            rows.append(("first gateway step (route)", gateway_first, FIRST_BLOCK_TARGET_MS))
    print(f"\ngatewise repl: {n_keys} keys per row, {n_turns} turns; streamed {streamed} chars"
          " into the answer while typing\n")
    print(f"{'figure':<30}{'median ms':>10}{'p95 ms':>9}{'max ms':>9}{'target':>9}  verdict")
    missed = False
    base = statistics.median(idle)
    for name, xs, target in rows:
        xs = sorted(xs)
        p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
        ok = p95 <= target
        missed |= not ok
        print(f"{name:<30}{statistics.median(xs):>10.1f}{p95:>9.1f}{xs[-1]:>9.1f}"
              f"{target:>9.0f}  {'ok' if ok else 'MISSED'} (p95)")
    print(f"\nstreaming / idle echo median: {statistics.median(busy) / base:.2f}x")
    return 1 if missed else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    raise SystemExit(asyncio.run(main(ap.parse_args().quick)))
