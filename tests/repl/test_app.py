"""`gatewise repl` driven by Textual's headless pilot against a real gateway (in process, and
over HTTP) in front of the fake OpenAI upstream: what the user types becomes a turn whose every
step is a block, with the upstream's real token figures; errors and fallbacks are blocks of
their own; `/model`, `/export`, `/search`, `/conversation` do what they say; Ctrl-C cancels the
step and the upstream sees its connection closed; the input stays live while a step streams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from gatewise.cli.repl.app import ReplApp
from gatewise.cli.repl.backends import HttpBackend, InProcessBackend
from gatewise.cli.repl.export import export_markdown
from gatewise.cli.repl.history import History
from gatewise.cli.repl.pipeline import PipelineRunner, parse_pipeline
from gatewise.cli.repl.timeline import cost_summary
from gatewise.config.loader import parse_config, resolve_config
from gatewise.gateway import Gateway
from gatewise.pipeline.core import ANONYMOUS
from gatewise.rag.types import LoadedDocument, Section
from tests.fakes.gateway import GatewayServer
from tests.fakes.openai_fake import _prompt_tokens
from tests.fakes.server import FakeServer
from tests.repl import tools
from tests.repl.conftest import gateway_config, in_process, make_app_for
from tests.waiting import eventually

SIZE = (120, 50)
TRIAGE = parse_pipeline({
    "steps": [
        {"name": "route", "model": "gpt", "prompt": "Category of: {{ input }}"},
        {"name": "tool", "model": "other", "tools": ["lookup_order"],
         "prompt": "Look it up ({{ route }})"},
        {"name": "answer", "prompt": "Facts: {{ tool }}"},
    ],
    "tools": [{"name": "lookup_order", "description": "an order's status",
               "parameters": {"type": "object", "properties": {
                   "order_id": {"type": "string"}}, "required": ["order_id"]},
               "handler": "tests.repl.tools:lookup_order"}]})


async def submit(pilot: Pilot[None], text: str, *, typed: bool = False) -> None:
    """`text` in the input line (typed key by key when `typed`; the pilot waits for the app
    to go idle after every key, so the others paste it), then Enter."""
    if typed:
        await pilot.press(*text)
    else:
        pilot.app.query_one("#prompt", Input).value = text
    await pilot.press("enter")


async def turn(app: ReplApp, pilot: Pilot[None], text: str, *, typed: bool = False) -> None:
    """`text`, Enter, and the turn waited for."""
    await submit(pilot, text, typed=typed)
    worker = app.turn_worker
    assert worker is not None
    await worker.wait()
    await pilot.pause()


def kinds(app: ReplApp, turn_no: int | None = None) -> list[str]:
    return [b.kind for b in app.blocks if turn_no is None or b.turn == turn_no]


def block(app: ReplApp, kind: str) -> Any:
    return next(b for b in reversed(app.blocks) if b.kind == kind)


def screen_text(app: ReplApp) -> str:
    """What the timeline shows: the running turn's blocks and the finished turns' views."""
    return "\n".join(str(v.render()) for v in app.query("#timeline > *"))


async def test_a_prompt_becomes_blocks_with_the_upstreams_real_figures(
        upstream: FakeServer, tmp_path: Path) -> None:
    app = make_app_for(in_process(upstream, tmp_path), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await turn(app, pilot, "hello there", typed=True)
        assert kinds(app) == ["input", "step", "route", "attempt", "first_token", "answer",
                              "done"]
        assert block(app, "answer").text == "Hello! You said: hello there"
        done = block(app, "done").data
        sent = {"messages": [{"role": "user", "content": "hello there"}]}
        assert done["usage"] == {"prompt_tokens": _prompt_tokens(sent), "completion_tokens": 5,
                                 "cached_tokens": 0}
        assert done["cost_usd"] == pytest.approx((_prompt_tokens(sent) + 2 * 5) / 1e6)
        assert block(app, "attempt").data["deployment"] == "gpt:openai/gpt-4o-mini"
        text = screen_text(app)
        assert f"{_prompt_tokens(sent)} in · 5 out · 0 cached" in text
        assert "#1 openai/gpt-4o-mini (first)" in text
        # The conversation carries on: the next turn sends the first one as history.
        await turn(app, pilot, "again")
        assert app.messages[-2:] == [{"role": "user", "content": "again"},
                                     {"role": "assistant", "content": "Hello! You said: again"}]
        last = upstream.requests[-1].json()["messages"]
        assert [m["content"] for m in last] == ["hello there", "Hello! You said: hello there",
                                                "again"]


async def test_an_upstream_error_is_an_error_block_and_a_fallback_is_an_attempt(
        upstream: FakeServer, tmp_path: Path) -> None:
    app = make_app_for(in_process(upstream, tmp_path), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await submit(pilot, "/model flaky")
        await turn(app, pilot, "are you there")
        failed = block(app, "attempt_failed").data
        assert (failed["error_type"], failed["status"], failed["next"]) == (
            "ProviderOverloadedError", 503, "fallback")
        attempts = [b.data for b in app.blocks if b.kind == "attempt"]
        assert [(a["reason"], a["deployment"]) for a in attempts] == [
            ("first", "flaky:openai/gpt-fail-503"), ("fallback", "gpt:openai/gpt-4o-mini")]
        assert kinds(app, 1)[-1] == "done"
        await submit(pilot, "/model broken")
        await turn(app, pilot, "again")
        assert kinds(app, 2)[-1] == "error"
        err = block(app, "error").data
        assert err["type"] == "BadRequestError" and err["status"] == 400
        assert "error" in screen_text(app) and "BadRequestError 400" in screen_text(app)
        assert app.last_turn is not None and app.last_turn.error is not None
        assert app.messages[-1]["content"] == "Hello! You said: are you there"  # not the failure


async def test_model_switches_the_answer_step_and_lists_the_models(
        upstream: FakeServer, tmp_path: Path) -> None:
    app = make_app_for(in_process(upstream, tmp_path), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await submit(pilot, "/model")
        await pilot.pause()
        assert "available: gpt, other" in block(app, "info").text
        await submit(pilot, "/model other")
        await turn(app, pilot, "hi")
        assert block(app, "attempt").data["model"] == "gpt-4o"
        assert upstream.requests[-1].json()["model"] == "gpt-4o"
        assert "answer(other)" in str(app.query_one("#status").render())


async def test_system_sets_the_prompt_and_clear_starts_a_new_conversation(
        upstream: FakeServer, tmp_path: Path) -> None:
    app = make_app_for(in_process(upstream, tmp_path), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await submit(pilot, "/system You answer in French.")
        await turn(app, pilot, "bonjour")
        sent = upstream.requests[-1].json()["messages"]
        assert sent[0] == {"role": "system", "content": "You answer in French."}
        await submit(pilot, "/clear")
        await pilot.pause()
        assert app.conversation != "c_test" and app.messages == []
        assert kinds(app) == ["info"] and app.conversation in block(app, "info").text
        await turn(app, pilot, "fresh start")
        sent = upstream.requests[-1].json()["messages"]
        assert [m["role"] for m in sent] == ["system", "user"]  # no old turns, same system


async def test_a_route_tool_answer_pipeline_passes_each_output_on(
        upstream: FakeServer, tmp_path: Path) -> None:
    tools.CALLS.clear()
    app = make_app_for(in_process(upstream, tmp_path), tmp_path, TRIAGE)
    async with app.run_test(size=SIZE) as pilot:
        await turn(app, pilot, "where is my parcel")
        steps = [b.step for b in app.blocks if b.kind == "step"]
        assert steps == ["route", "tool", "answer"]
        assert [b.step for b in app.blocks if b.kind == "done"] == ["route", "tool", "answer"]
        tool = block(app, "tool").data
        assert tool["tool"] == "lookup_order" and [tool["arguments"]] == tools.CALLS
        assert json.loads(tool["result"])["status"] == "shipped"
        answer = block(app, "answer")
        assert answer.step == "answer" and answer.text.startswith(
            "Hello! You said: Facts: lookup_order: {")
        # Each step asked the gateway for its own model, and said which step it was.
        bodies = [r.json() for r in upstream.requests[-3:]]
        assert [b["model"] for b in bodies] == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
        assert bodies[1]["tools"][0]["function"]["name"] == "lookup_order"
        await submit(pilot, "/cost")
        await pilot.pause()
        cost = block(app, "info").text
        assert "route: 1 calls" in cost and "tool: 1 calls" in cost and "total: 3 calls" in cost


async def test_export_json_and_markdown_hold_the_timeline(
        upstream: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app_for(in_process(upstream, tmp_path), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await turn(app, pilot, "export me")
        await submit(pilot, "/export json t.json")
        await submit(pilot, "/export md")  # the default name: the conversation's
        await eventually(lambda: (tmp_path / "gatewise-timeline-c_test.md").exists(),
                         what="the Markdown export")
        assert "exported 7 blocks to" in block(app, "info").text
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["conversation"] == "c_test"
    assert [b["kind"] for b in doc["blocks"]] == ["input", "step", "route", "attempt",
                                                  "first_token", "answer", "done"]
    assert doc["blocks"][-1]["data"]["usage"]["completion_tokens"] == 5
    md = (tmp_path / "gatewise-timeline-c_test.md").read_text()
    assert "## Turn 1: export me" in md and "Hello! You said: export me" in md
    assert "- **done** " in md and "5 out" in md


async def test_history_is_searchable_and_a_conversation_can_be_resumed(
        upstream: FakeServer, tmp_path: Path) -> None:
    app = make_app_for(in_process(upstream, tmp_path), tmp_path, conversation="c_first")
    async with app.run_test(size=SIZE) as pilot:
        await turn(app, pilot, "the blue whale")
        await turn(app, pilot, "a red fox")
        await submit(pilot, "/search whale")
        await eventually(lambda: "turns match" in block(app, "info").text)
        found = block(app, "info").text
        assert "c_first" in found and "the blue whale" in found and "red fox" not in found
    # A new session on the same history file resumes it: timeline and conversation back.
    again = make_app_for(in_process(upstream, tmp_path), tmp_path, conversation="c_second")
    async with again.run_test(size=SIZE) as pilot:
        await submit(pilot, "/conversation c_first")
        await eventually(lambda: again.conversation == "c_first")
        await pilot.pause()
        assert again.messages[0] == {"role": "user", "content": "the blue whale"}
        assert kinds(again).count("done") == 2
        await turn(again, pilot, "and then")
        sent = [m["content"] for m in upstream.requests[-1].json()["messages"]]
        assert sent[:2] == ["the blue whale", "Hello! You said: the blue whale"]
    rows = await History(tmp_path / "repl" / "history.db").turns("c_first")
    assert [r.input for r in rows] == ["the blue whale", "a red fox", "and then"]


async def test_the_input_stays_live_while_a_step_streams_and_ctrl_c_cancels_it(
        upstream: FakeServer, tmp_path: Path) -> None:
    upstream.notes.clear()
    app = make_app_for(in_process(upstream, tmp_path), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await submit(pilot, "/model endless")
        await submit(pilot, "go on forever")
        await eventually(lambda: "tick" in (next((b.text for b in app.blocks
                                                  if b.kind == "answer"), "")))
        await pilot.press("o", "k")  # (the pilot waits for idle after each key: keep it short)
        assert app.query_one("#prompt", Input).value == "ok"
        assert app.running
        await pilot.press("ctrl+c")
        await eventually(lambda: not app.running, what="the turn cancelled")
        await pilot.pause()
        assert kinds(app)[-1] == "cancelled"
        assert "done" not in kinds(app) and "error" not in kinds(app)  # a cancel, not a failure
    await eventually(lambda: "stream-aborted" in upstream.notes, timeout_s=5,
                     what="the upstream saw its connection closed")


@pytest.fixture(scope="module")
def server(upstream: FakeServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[GatewayServer]:
    config = gateway_config(upstream, tmp_path_factory.mktemp("repl-http"))
    config["server"] = {"master_key": "sk-repl-master", "warmup": False}
    with GatewayServer(config) as srv:
        yield srv


async def test_over_http_the_same_blocks_come_from_the_step_frames(
        server: GatewayServer, upstream: FakeServer, tmp_path: Path) -> None:
    backend = HttpBackend(server.url, "sk-repl-master")
    app = make_app_for(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await turn(app, pilot, "over the wire")
        assert kinds(app) == ["input", "step", "route", "attempt", "first_token", "answer",
                              "done"]
        assert block(app, "answer").text == "Hello! You said: over the wire"
        assert block(app, "done").data["usage"]["completion_tokens"] == 6  # words, as sent
        await submit(pilot, "/model broken")
        await turn(app, pilot, "fail please")
        assert kinds(app, 2)[-1] == "error"
        assert block(app, "error").data["type"] == "BadRequestError"


async def test_over_http_a_streamed_tool_call_is_assembled_and_run(
        server: GatewayServer, tmp_path: Path) -> None:
    tools.CALLS.clear()
    app = make_app_for(HttpBackend(server.url, "sk-repl-master", default_model="gpt"), tmp_path,
                       TRIAGE)
    async with app.run_test(size=SIZE) as pilot:
        await turn(app, pilot, "where is it")
        tool = block(app, "tool").data
        assert tool["tool"] == "lookup_order" and [tool["arguments"]] == tools.CALLS
        assert [b.step for b in app.blocks if b.kind == "done"] == ["route", "tool", "answer"]
        assert block(app, "answer").text.startswith("Hello! You said: Facts: lookup_order: {")


async def test_over_http_ctrl_c_closes_the_connection_and_the_gateway_closes_the_upstream(
        server: GatewayServer, upstream: FakeServer, tmp_path: Path) -> None:
    upstream.notes.clear()
    app = make_app_for(HttpBackend(server.url, "sk-repl-master"), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await submit(pilot, "/model endless")
        await submit(pilot, "stream until stopped")
        await eventually(lambda: any(b.kind == "answer" for b in app.blocks), timeout_s=10)
        await pilot.press("ctrl+c")
        await eventually(lambda: not app.running)
        await pilot.pause()
        assert kinds(app)[-1] == "cancelled" and "error" not in kinds(app)
    await eventually(lambda: "stream-aborted" in upstream.notes, timeout_s=5,
                     what="the upstream saw its connection closed")


async def test_a_bad_key_over_http_is_an_error_block_not_a_crash(
        server: GatewayServer, tmp_path: Path) -> None:
    app = make_app_for(HttpBackend(server.url, "sk-wrong"), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await turn(app, pilot, "let me in")
        err = block(app, "error").data
        assert err["status"] == 401 and kinds(app)[-1] == "error"


def test_the_runner_offline_sends_every_step_to_the_default_model(tmp_path: Path) -> None:
    spec = parse_pipeline({"steps": [{"name": "route", "model": "fast"},
                                     {"name": "answer", "model": "smart"}]})
    runner = PipelineRunner(spec, HttpBackend("http://127.0.0.1:9", None), offline=True)
    assert [runner.model_of(s) for s in spec.steps] == [None, None]
    runner.answer_model = "local"
    assert runner.model_of(spec.answer) == "local"


def _kb_and_fan_out(upstream: FakeServer, tmp_path: Path) -> InProcessBackend:
    """The test gateway plus a knowledge-base alias (`kb`, embeddings from the fake upstream)
    and a parallel orchestration (`both`: gpt and other at once)."""
    config = gateway_config(upstream, tmp_path)
    dep = {"api_base": upstream.url + "/v1", "api_key": "sk-upstream"}
    config["models"]["kb"] = [{"model": "openai/gpt-4o-mini", **dep}]
    config["models"]["emb"] = [{"model": "openai/text-embedding-3-small", **dep}]
    config["rag"] = {"embedder": "emb", "store": "memory", "scan_injection": "off",
                     "aliases": {"kb": {"collection": "handbook", "k": 2}}}
    config["orchestrations"] = {"both": {"mode": "parallel", "models": ["gpt", "other"]}}
    cfg, warnings = parse_config(config)
    return InProcessBackend(Gateway(resolve_config(cfg, None, {}, warnings)), "in process")


async def test_a_retrieval_block_lists_each_chunk_with_its_scores_and_a_preview(
        upstream: FakeServer, tmp_path: Path) -> None:
    backend = _kb_and_fan_out(upstream, tmp_path)
    gw = backend.gateway
    await gw.start()
    await gw.rag.create_collection(ANONYMOUS, "handbook")
    await gw.rag.ingest(ANONYMOUS, "handbook", [
        LoadedDocument("leave.md", (Section("Employees get 25 days of paid leave per year."),),
                       {"source": "handbook/leave.md"}),
        LoadedDocument("payroll.md", (Section("Salaries are paid on the 25th of the month."),),
                       {"source": "handbook/payroll.md"})])
    app = make_app_for(backend, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await submit(pilot, "/model kb")
        await turn(app, pilot, "how many days of paid leave")
        rag = block(app, "rag").data
        assert {c["document_id"] for c in rag["chunks"]} == {"leave.md", "payroll.md"}
        text = screen_text(app)
        assert "retrieval" in text and "hits from handbook" in text
        leave = next(c for c in rag["chunks"] if c["document_id"] == "leave.md")
        where = f"[{leave['source_index']}]" if leave["status"] == "source" else "("
        assert f"#{leave['rank']} {where}" in text
        assert "handbook/leave.md · leave.md#0 · score " in text and "rrf " in text
        assert "“Employees get 25 days of paid leave per year.”" in text
        md = export_markdown(app.blocks, "c")
        assert "  - #1 " in md and "leave.md#0" in md


async def test_an_orchestrations_branches_are_blocks_of_their_own_and_cost_once(
        upstream: FakeServer, tmp_path: Path) -> None:
    app = make_app_for(_kb_and_fan_out(upstream, tmp_path), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await submit(pilot, "/model both")
        await turn(app, pilot, "both of you")
        branch_done = [b.data for b in app.blocks if b.kind == "done" and "branch" in b.data]
        assert sorted(d["branch"]["model"] for d in branch_done) == ["gpt", "other"]
        assert all(d["cost_usd"] and d["usage"]["completion_tokens"] for d in branch_done)
        text = screen_text(app)
        assert "[branch 0 gpt] #1 openai/gpt-4o-mini (first)" in text
        assert "[branch 1 other] #1 openai/gpt-4o (first)" in text
        own = [b.data for b in app.blocks if b.kind == "done" and "branch" not in b.data]
        assert len(own) == 1 and kinds(app)[-1] == "done"
        summary = cost_summary(app.blocks)  # the call's own figures: branches not twice
        assert sum(s.calls for s in summary.values()) == 1
        assert sum(s.cost_usd for s in summary.values()) == pytest.approx(
            own[0]["cost_usd"] or 0.0)
