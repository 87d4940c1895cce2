"""`gatewise repl`: the Textual app. Each input runs the pipeline; every step is a block on the
timeline as it happens.

The turn runs as an async Textual worker on the app's own loop, so the input line stays live
while a step streams (typing, commands such as `/cost`); Ctrl-C cancels the worker, which
closes the upstream request (over HTTP: the connection, which the server turns into a
cancelled upstream call). Blocks are added the moment the runner reports something: the
input and the pipeline step at once (before anything is sent), then the gateway's own steps as
its stream delivers them, the answer's text as it streams (the view is refreshed at most every
`STREAM_REFRESH_S`, so a fast stream cannot starve the keyboard), then `done` with the figures.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from gatewise.types.ids import unique_suffix

from .backends import Backend, BackendError
from .export import write_export
from .history import History
from .pipeline import PipelineRunner, Turn
from .timeline import HIDDEN, Block, clip, cost_lines, cost_summary, gateway_kind
from .widgets import BlockView, TurnView

STREAM_REFRESH_S = 0.05
# Finished turns kept on screen (older ones stay in the history, exports and `/cost`).
MAX_TURN_VIEWS = 200

HELP = """commands:
  /model [alias]          the answer step's model (no alias: list the models)
  /system [text]          the system prompt (no text: clear it)
  /conversation [id]      show the conversation, or resume one from the history
  /clear                  a new conversation: empty timeline and history
  /cost                   tokens and cost per step, from the gateway's figures
  /export json|md [path]  write the timeline to a file
  /search <text>          search the persisted history
  /help · /quit           (Ctrl-C cancels a running step; Ctrl-Q quits)"""


def new_conversation_id() -> str:
    return f"c_{unique_suffix()[:12]}"


class _Sink:
    """The runner's reports for one turn, turned into blocks on the screen."""

    def __init__(self, app: ReplApp, turn: int) -> None:
        self.app = app
        self.turn = turn
        self.answers: dict[str, BlockView] = {}

    def step_started(self, step: str, model: str | None) -> None:
        self.app.add_block(Block("step", step, {"model": model}, turn=self.turn))

    def gateway_step(self, step: str, name: str, data: dict[str, Any]) -> None:
        if name in HIDDEN:
            return
        if name in ("done", "error"):
            self.app.flush_stream()
        self.app.add_block(Block(gateway_kind(name), step, data, turn=self.turn))

    def delta(self, step: str, text: str) -> None:
        view = self.answers.get(step)
        if view is None:
            view = self.app.add_block(Block("answer", step, turn=self.turn))
            self.answers[step] = view
        view.block.text += text
        self.app.stream_changed(view)

    def tool_ran(self, step: str, data: dict[str, Any]) -> None:
        self.app.add_block(Block("tool", step, data, turn=self.turn))

    def step_failed(self, step: str, error: BackendError) -> None:
        # The gateway's own `error` step is on the timeline already when it got that far.
        if not any(b.kind == "error" and b.turn == self.turn for b in self.app.blocks):
            self.app.add_block(Block("error", step, {"type": error.type, "status": error.status,
                                                     "message": error.message}, turn=self.turn))


class ReplApp(App[None]):
    TITLE = "gatewise repl"
    CSS = """
    #status { dock: top; height: 1; background: $primary-background; padding: 0 1; }
    #timeline { height: 1fr; }
    #prompt { dock: bottom; }
    """
    BINDINGS = [Binding("ctrl+c", "cancel", "Cancel the running step", priority=True)]

    def __init__(self, backend: Backend, runner: PipelineRunner, history: History | None, *,
                 conversation: str | None = None, system: str | None = None,
                 mask_timings: bool = False) -> None:
        super().__init__()
        self.backend = backend
        self.runner = runner
        self.history = history
        self.conversation = conversation or new_conversation_id()
        self.system = system
        self.mask_timings = mask_timings
        self.blocks: list[Block] = []
        self.messages: list[dict[str, Any]] = []  # the conversation the answer step sees
        self.turns = 0
        self.turn_worker: Worker[None] | None = None
        self.last_turn: Turn | None = None
        self._dirty: set[BlockView] = set()
        self._flush_timer: Any = None

    # -- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="status", markup=False)
        yield VerticalScroll(id="timeline")
        yield Input(placeholder="Ask something, or /help", id="prompt")

    def on_mount(self) -> None:
        self.update_status()
        # Anchored: the newest block sits just above the input line and stays in view until
        # the user scrolls up (no scroll per block: each would cost an extra refresh).
        self.query_one("#timeline", VerticalScroll).anchor()
        self.query_one("#prompt", Input).focus()
        self.run_worker(self.backend.warm(), group="warm", exit_on_error=False)

    def update_status(self) -> None:
        spent = sum(s.cost_usd for s in cost_summary(self.blocks).values())
        steps = " → ".join(f"{s.name}({self.runner.model_of(s) or 'default'})"
                           for s in self.runner.spec.steps)
        running = " · running (Ctrl-C cancels)" if self.running else ""
        self.query_one("#status", Static).update(
            f"{self.backend.label} · {steps} · {self.conversation} · ${spent:.6f}{running}")

    @property
    def running(self) -> bool:
        w = self.turn_worker
        return w is not None and w.state in (WorkerState.PENDING, WorkerState.RUNNING)

    # -- blocks ----------------------------------------------------------------------------
    def add_block(self, block: Block) -> BlockView:
        self.blocks.append(block)
        view = BlockView(block, mask_timings=self.mask_timings)
        self.query_one("#timeline", VerticalScroll).mount(view)
        return view

    def stream_changed(self, view: BlockView) -> None:
        self._dirty.add(view)
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(STREAM_REFRESH_S, self.flush_stream)

    def flush_stream(self) -> None:
        self._flush_timer = None
        if not self._dirty:
            return
        for view in self._dirty:
            view.refresh_block()
        self._dirty.clear()

    def compact(self) -> None:
        """Folds the blocks on screen into one `TurnView` per turn (`widgets`), keeping at most
        `MAX_TURN_VIEWS` of them: every block stays in `self.blocks` (exports, `/cost`)."""
        self.flush_stream()
        timeline = self.query_one("#timeline", VerticalScroll)
        live = [w for w in timeline.children if isinstance(w, BlockView)]
        groups: list[list[BlockView]] = []
        for view in live:
            if groups and groups[-1][-1].block.turn == view.block.turn:
                groups[-1].append(view)
            else:
                groups.append([view])
        for group in groups:
            timeline.mount(TurnView([v.block for v in group], mask_timings=self.mask_timings),
                           before=group[0])
        for view in live:
            view.remove()
        folded = [w for w in timeline.children if isinstance(w, TurnView)]
        for old in folded[: max(0, len(folded) - MAX_TURN_VIEWS)]:
            old.remove()

    def info(self, text: str) -> None:
        self.add_block(Block("info", text=text, turn=self.turns))

    def clear_timeline(self) -> None:
        self.blocks.clear()
        self.query_one("#timeline", VerticalScroll).remove_children()

    # -- input -----------------------------------------------------------------------------
    async def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        if not text:
            return
        if text.startswith("/"):
            await self.command(text)
            return
        if self.running:
            self.info("a step is still running: wait for it, or Ctrl-C cancels it")
            return
        self.turns += 1
        self.add_block(Block("input", text=text, turn=self.turns))
        self.turn_worker = self.run_turn(text, self.turns)
        self.update_status()

    @work(group="turn", exclusive=True)
    async def run_turn(self, text: str, turn: int) -> None:
        sink = _Sink(self, turn)
        try:
            result = await self.runner.run(text, sink, history=list(self.messages),
                                           system=self.system)
        except asyncio.CancelledError:
            self.add_block(Block("cancelled", turn=turn))
            self.compact()
            await self._persist(Turn(text, error="cancelled"), turn)
            raise
        except Exception as exc:  # a template or tool bug: an error block, not a crash
            self.add_block(Block("error", data={"type": type(exc).__name__, "status": None,
                                                "message": str(exc)}, turn=turn))
            result = Turn(text, error=f"{type(exc).__name__}: {exc}")
        self.last_turn = result
        if result.error is None:
            self.messages += [{"role": "user", "content": text},
                              {"role": "assistant", "content": result.answer}]
        self.compact()
        await self._persist(result, turn)
        self.update_status()

    async def _persist(self, result: Turn, turn: int) -> None:
        if self.history is None:
            return
        blocks = [b for b in self.blocks if b.turn == turn]
        costs = [float(b.data["cost_usd"]) for b in blocks  # a branch's is in its call's
                 if b.kind == "done" and b.data.get("cost_usd") is not None
                 and "branch" not in b.data]
        try:
            await self.history.add(self.conversation, result.input, result.answer, result.error,
                                   sum(costs) if costs else None, blocks)
        except Exception as exc:  # the history is a convenience: never lose the session to it
            self.info(f"history not saved: {type(exc).__name__}: {exc}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self.turn_worker:
            self.update_status()

    def action_cancel(self) -> None:
        """Ctrl-C: cancels the running step (and its upstream request)."""
        if self.running and self.turn_worker is not None:
            self.turn_worker.cancel()
        else:
            self.notify("nothing is running (Ctrl-Q or /quit leaves)", timeout=2)

    # -- commands --------------------------------------------------------------------------
    async def command(self, line: str) -> None:
        name, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        handler = getattr(self, f"cmd_{name.lower()}", None)
        if handler is None:
            self.info(f"unknown command /{name}; /help lists them")
            return
        try:
            await handler(rest)
        except BackendError as exc:
            self.info(f"/{name}: {exc.type}: {exc.message}")
        self.update_status()

    async def cmd_help(self, rest: str) -> None:
        self.info(HELP)

    async def cmd_quit(self, rest: str) -> None:
        if self.turn_worker is not None:
            self.turn_worker.cancel()
        self.exit()

    async def cmd_model(self, rest: str) -> None:
        answer = self.runner.spec.answer
        if not rest:
            models = await self.backend.models()
            current = self.runner.model_of(answer) or "default"
            self.info(f"{answer.name} step model: {current}; available: {', '.join(models)}")
            return
        self.runner.answer_model = rest
        self.info(f"{answer.name} step model: {rest}")

    async def cmd_system(self, rest: str) -> None:
        self.system = rest or None
        self.info(f"system prompt: {clip(rest, 100)}" if rest else "system prompt cleared")

    async def cmd_conversation(self, rest: str) -> None:
        if not rest:
            lines = [f"conversation {self.conversation}: {self.turns} turns this session"]
            if self.history is not None:
                for cid, n, _ in await self.history.conversations(10):
                    lines.append(f"  {cid}  {n} turns")
            self.info("\n".join(lines))
            return
        if self.running:
            self.info("a step is running: Ctrl-C first")
            return
        rows = await self.history.turns(rest) if self.history is not None else []
        if not rows:
            self.info(f"no conversation {rest} in the history")
            return
        self.clear_timeline()
        self.conversation = rest
        self.messages = []
        self.turns = 0
        for row in rows:
            self.turns += 1
            for b in row.blocks:
                b.turn = self.turns
                self.add_block(b)
            if row.error is None:
                self.messages += [{"role": "user", "content": row.input},
                                  {"role": "assistant", "content": row.answer}]
        self.info(f"resumed {rest}: {len(rows)} turns")
        self.compact()

    async def cmd_clear(self, rest: str) -> None:
        if self.turn_worker is not None:
            self.turn_worker.cancel()
        self.clear_timeline()
        self.messages = []
        self.turns = 0
        self.conversation = new_conversation_id()
        self.info(f"new conversation {self.conversation}")

    async def cmd_cost(self, rest: str) -> None:
        self.info("\n".join(["cost (the gateway's own figures):", *cost_lines(self.blocks)]))

    async def cmd_export(self, rest: str) -> None:
        kind, _, path = rest.partition(" ")
        if kind not in ("json", "md"):
            self.info("usage: /export json|md [path]")
            return
        blocks = [b for b in self.blocks if b.kind != "info"]
        target = await asyncio.to_thread(write_export, kind, blocks, self.conversation,
                                         path.strip() or None)
        self.info(f"exported {len(blocks)} blocks to {target}")

    async def cmd_search(self, rest: str) -> None:
        if not rest:
            self.info("usage: /search <text>")
            return
        if self.history is None:
            self.info("no history in this session")
            return
        rows = await self.history.search(rest)
        if not rows:
            self.info(f"nothing found for {rest!r}")
            return
        lines = [f"{len(rows)} turns match {rest!r}:"]
        for r in rows:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.ts))
            lines.append(f"  {r.conversation} {when}  {clip(r.input, 50)} → {clip(r.answer, 60)}")
        self.info("\n".join(lines))

    async def on_unmount(self) -> None:
        """The app owns its backend (a connection pool, or a whole in-process gateway)."""
        if self.turn_worker is not None:
            self.turn_worker.cancel()
        if self.history is not None:
            self.history.close()
        await self.backend.aclose()
