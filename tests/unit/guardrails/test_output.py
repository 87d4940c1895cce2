"""Output checks, each way: toxicity, code that must parse, groundedness; flag, block, retry."""

from __future__ import annotations

import pytest

from gatewise.guardrails.output import (
    CodeCheck,
    GroundednessCheck,
    OutputCheckFailed,
    OutputCheckMiddleware,
    ToxicityCheck,
    load_word_list,
)
from gatewise.types.requests import ChatRequest
from gatewise.types.validation import chat_request_from_dict
from tests.unit.tools.support import RecordingSink, scripted_gateway

REQ = chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": "q"}]})
TOX = ToxicityCheck()


def test_the_shipped_word_list_is_stored_rot13_and_decodes() -> None:
    words = load_word_list()
    assert "shit" in words and len(words) > 50
    from importlib import resources
    raw = resources.files("gatewise.guardrails").joinpath("data", "profanity.rot13.txt").read_text()
    assert "\nshit\n" not in raw


@pytest.mark.parametrize("text", ["this is shit", "What the FUCK.", "you are an idiot!",
                                  "sh1t happens", "$hit", "what a b1tch", "s h i t", "f.u.c.k"])
def test_profanity_is_found_through_case_leetspeak_and_spacing(text: str) -> None:
    assert TOX.matches(text), text


@pytest.mark.parametrize("text", ["Scunthorpe is a town", "a classic assessment", "the fee is $5",
                                  "shitake? no: shiitake mushrooms", "cocktail hour", "Dickens wrote it",
                                  "I passed the class"])
def test_clean_text_with_embedded_look_alikes_does_not_match(text: str) -> None:
    assert TOX.matches(text) == [], text


def test_allow_and_extra_adjust_the_list() -> None:
    t = ToxicityCheck(extra=["frak"], allow=["damn"])
    assert t.matches("frak it") == ["frak"] and t.matches("damn it") == []


def test_code_blocks_must_parse() -> None:
    good = "Here:\n```python\ndef f(x):\n    return x + 1\n```\nand\n```json\n{\"a\": [1, 2]}\n```\n"
    bad = "```python\ndef f(x)\n    return x\n```\n```json\n{\"a\": 1,}\n```\n```rust\nfn main( {\n```"
    assert CodeCheck().errors(good) == []
    errs = CodeCheck().errors(bad)
    assert len(errs) == 2
    assert errs[0].startswith("python block 1 does not parse (line 1")
    assert errs[1].startswith("json block 2 does not parse")


CONTEXT = ("The Eiffel Tower is 330 metres tall. It was completed in 1889 for the World's Fair "
           "in Paris. Gustave Eiffel's company designed and built the tower.")


def req_with_context(context: str) -> ChatRequest:
    return chat_request_from_dict({"model": "m", "messages": [
        {"role": "system", "name": "context", "content": context},
        {"role": "user", "content": "Tell me about the Eiffel Tower"}]})


def test_a_grounded_answer_passes_and_an_invented_one_is_flagged() -> None:
    g = GroundednessCheck(threshold=0.5)
    grounded = ("The Eiffel Tower is 330 metres tall. It was completed in 1889 for the World's "
                "Fair in Paris.")
    invented = ("The Eiffel Tower was moved to London in 1950. Queen Victoria painted it bright "
                "green every spring. It is 330 metres tall.")
    assert g.check(grounded, req_with_context(CONTEXT)) is None
    f = g.check(invented, req_with_context(CONTEXT))
    assert f is not None and f.check == "groundedness" and f.score is not None and f.score < 0.5
    assert "2 of 3 sentences are not supported" in f.reason


def test_groundedness_reads_tool_results_metadata_and_options_and_skips_without_context() -> None:
    g = GroundednessCheck()
    answer = "Gustave Eiffel's company designed and built the tower."
    assert g.check(answer, REQ) is None  # nothing to judge against
    with_meta = chat_request_from_dict({"model": "m", "metadata": {"context": "Cats sleep a lot."},
                                        "messages": [{"role": "user", "content": "q"}]})
    assert g.check(answer, with_meta) is not None
    assert GroundednessCheck(context=[CONTEXT]).check(answer, with_meta) is None
    tool_ctx = chat_request_from_dict({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "search", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": CONTEXT}]})
    assert g.check(answer, tool_ctx) is None


async def test_flag_lets_the_answer_through_with_a_header_an_event_and_a_security_event() -> None:
    sink = RecordingSink()
    gw, _ = scripted_gateway(["well shit, here it is"],
                             [OutputCheckMiddleware([TOX], events=sink)])
    async with gw:
        r = await gw.chat("hi")
    assert r.content == "well shit, here it is"
    assert sink.events == [("output_check", "flag", {"check": "toxicity", "score": 1.0})]


async def test_block_raises_a_guardrail_violation_naming_the_check() -> None:
    gw, _ = scripted_gateway(["```python\nprint(\n```"],
                             [OutputCheckMiddleware([(CodeCheck(), "block")])])
    async with gw:
        with pytest.raises(OutputCheckFailed) as err:
            await gw.chat("code please")
    assert err.value.status == 400 and err.value.code == "output_check_failed"
    assert "code: python block 1 does not parse" in err.value.message


async def test_retry_asks_again_with_a_note_and_returns_the_fixed_answer() -> None:
    gw, model = scripted_gateway(['```json\n{"a": 1,}\n```', '```json\n{"a": 1}\n```'],
                                 [OutputCheckMiddleware([CodeCheck()], actions={"code": "retry"})])
    async with gw:
        r = await gw.chat("json please")
    assert r.content == '```json\n{"a": 1}\n```'
    note = model.requests[1].messages[-1]
    assert "failed an automatic check: code: json block 1 does not parse" in str(note.content)  # type: ignore[union-attr]


async def test_retry_that_fails_again_is_blocked() -> None:
    gw, model = scripted_gateway(["you idiot"], [OutputCheckMiddleware([(TOX, "retry")])])
    async with gw:
        with pytest.raises(OutputCheckFailed, match="after one retry"):
            await gw.chat("hi")
    assert len(model.requests) == 2


async def test_off_checks_are_dropped_and_streams_are_judged_at_the_end() -> None:
    mw = OutputCheckMiddleware([(TOX, "off"), (CodeCheck(), "block")])
    assert [c.name for c, _ in mw.checks] == ["code"]
    gw, _ = scripted_gateway(lambda req: "you moron", [OutputCheckMiddleware([(TOX, "block")])])
    async with gw:
        with pytest.raises(OutputCheckFailed, match="toxicity"):
            _ = [c async for c in gw.stream("hi")]
