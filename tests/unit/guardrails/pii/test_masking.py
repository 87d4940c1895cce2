"""Masking a whole chat request (every role, parts, tool-call arguments) and restoring the
answer exactly, complete or streamed, whatever the chunk boundaries."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gatewise.guardrails.pii import (
    PIIDetector,
    PIIVault,
    StreamUnmasker,
    mask_request,
    unmask_completion,
    unmask_json_text,
    unmask_text,
)
from gatewise.types.messages import text_of
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice, Delta, DeltaFunctionCall, DeltaToolCall
from gatewise.types.validation import chat_request_from_dict

EMAIL = "john.smith@example.com"
CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
SSN = "536-22-8726"
PHONE = "+44 20 7123 4567"
IP = "10.0.0.12"
ACCOUNT = "ACC-123456"
SEEDED = (EMAIL, CARD, IBAN, SSN, PHONE, IP, ACCOUNT)


def every_role_request() -> ChatRequest:
    return chat_request_from_dict({"model": "gpt", "messages": [
        {"role": "system", "content": f"The customer's e-mail is {EMAIL}."},
        {"role": "developer", "content": [{"type": "text", "text": f"Account {ACCOUNT} is on file."}]},
        {"role": "user", "content": f"My card {CARD} was charged twice."},
        {"role": "assistant", "content": f"I see the card and the e-mail {EMAIL}.",
         "tool_calls": [{"id": "call_1", "type": "function", "function": {
             "name": "refund", "arguments": json.dumps({"iban": IBAN, "note": f'ssn "{SSN}"'})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"refund queued; caller ip {IP}"},
        {"role": "user", "content": [{"type": "text", "text": f"Call me on {PHONE}."},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
    ]})


def wire(req: ChatRequest) -> str:
    return msgspec.json.encode(req).decode()


def test_every_role_and_tool_call_argument_is_masked(patterns: PIIDetector) -> None:
    req = every_role_request()
    out = mask_request(req, patterns.find, PIIVault())
    body = wire(out.request)
    for value in SEEDED:
        assert value not in body, value
        assert json.dumps(value)[1:-1] not in body, value
    assert out.masked and not out.blocked
    assert out.counts == {"EMAIL_ADDRESS": 2, "ACCOUNT_ID": 1, "CREDIT_CARD": 1, "IBAN_CODE": 1,
                          "US_SSN": 1, "IP_ADDRESS": 1, "PHONE_NUMBER": 1}
    args = json.loads(out.request.messages[3].tool_calls[0].function.arguments)  # type: ignore[union-attr]
    assert args == {"iban": "<IBAN_1>", "note": 'ssn "<SSN_1>"'}
    assert "https://x/y.png" in body   # non-text parts pass untouched


def test_the_same_value_gets_one_placeholder_across_messages(patterns: PIIDetector) -> None:
    out = mask_request(every_role_request(), patterns.find, PIIVault())
    msgs = out.request.messages
    assert "<EMAIL_1>" in text_of(msgs[0].content) and "<EMAIL_1>" in text_of(msgs[3].content)


def test_the_callers_request_is_never_mutated(patterns: PIIDetector) -> None:
    req = every_role_request()
    before = wire(req)
    mask_request(req, patterns.find, PIIVault())
    assert wire(req) == before


def test_a_request_without_pii_is_passed_through_as_the_same_object(patterns: PIIDetector) -> None:
    req = chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": "hi there"}]})
    out = mask_request(req, patterns.find, PIIVault())
    assert out.request is req and out.counts == {} and not out.masked


def test_masking_then_unmasking_restores_every_text_exactly(patterns: PIIDetector) -> None:
    req = every_role_request()
    vault = PIIVault()
    out = mask_request(req, patterns.find, vault)
    mapping = vault.mapping()
    for orig, masked in zip(req.messages, out.request.messages, strict=True):
        assert unmask_text(text_of(masked.content), mapping) == text_of(orig.content)
    masked_args = out.request.messages[3].tool_calls[0].function.arguments  # type: ignore[union-attr]
    orig_args = req.messages[3].tool_calls[0].function.arguments  # type: ignore[union-attr]
    assert json.loads(unmask_json_text(masked_args, mapping)) == json.loads(orig_args)


def test_placeholders_the_caller_typed_are_not_reused(patterns: PIIDetector) -> None:
    req = chat_request_from_dict({"model": "m", "messages": [
        {"role": "user", "content": f"Use <EMAIL_1> as a template; my address is {EMAIL}"}]})
    vault = PIIVault()
    out = mask_request(req, patterns.find, vault)
    assert text_of(out.request.messages[0].content) == "Use <EMAIL_1> as a template; my address is <EMAIL_2>"
    assert unmask_text("<EMAIL_1> <EMAIL_2>", vault.mapping()) == f"<EMAIL_1> {EMAIL}"


@pytest.mark.parametrize(("action", "expected"), [
    ("redact", "card <REDACTED> and mail <EMAIL_1>"),
    ("hash", "card <CREDIT_CARD:{h}> and mail <EMAIL_1>"),
    ("flag", f"card {CARD} and mail <EMAIL_1>"),
    ("allow", f"card {CARD} and mail <EMAIL_1>"),
])
def test_policies_per_entity(patterns: PIIDetector, action: Any, expected: str) -> None:
    import hashlib

    req = chat_request_from_dict({"model": "m", "messages": [
        {"role": "user", "content": f"card {CARD} and mail {EMAIL}"}]})
    out = mask_request(req, patterns.find, PIIVault(), actions={"CREDIT_CARD": action})
    h = hashlib.sha256(CARD.encode()).hexdigest()[:8]
    assert text_of(out.request.messages[0].content) == expected.format(h=h)
    assert ("CREDIT_CARD" in out.counts) == (action != "allow")


def test_block_rewrites_nothing_and_names_only_entity_types(patterns: PIIDetector) -> None:
    req = chat_request_from_dict({"model": "m", "messages": [
        {"role": "user", "content": f"ssn {SSN}, mail {EMAIL}"}]})
    vault = PIIVault()
    out = mask_request(req, patterns.find, vault, actions={"US_SSN": "block"})
    assert out.blocked == ("US_SSN",)
    assert out.request is req and len(vault) == 0


def test_only_flagged_findings_leave_the_request_unchanged(patterns: PIIDetector) -> None:
    req = chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": EMAIL}]})
    out = mask_request(req, patterns.find, PIIVault(), default="flag")
    assert out.request is req and out.counts == {"EMAIL_ADDRESS": 1} and not out.masked


# -- unmasking ---------------------------------------------------------------------------------

TRICKY = 'Ann "Nan" O\\Brien\n'
MAPPING = {"<PERSON_1>": "John Smith", "<PERSON_12>": "Maria Garcia", "<EMAIL_1>": EMAIL,
           "<BANK_ACCOUNT_1>": "12345678", "<PERSON_2>": TRICKY}


def test_unmasking_a_completion_restores_text_and_json_escaped_tool_arguments() -> None:
    args = json.dumps({"to": "<PERSON_2>", "cc": ["<EMAIL_1>"]})
    done = ChatCompletion(choices=[Choice(finish_reason="stop", message=ResponseMessage(
        content="Dear <PERSON_1>, mail <EMAIL_1>; <PERSON_99> stays; <b>html</b>",
        tool_calls=[msgspec.convert({"id": "c", "type": "function",
                                     "function": {"name": "send", "arguments": args}},
                                    type=_ToolCall())]))])
    out = unmask_completion(done, MAPPING)
    msg = out.choices[0].message
    assert msg.content == f"Dear John Smith, mail {EMAIL}; <PERSON_99> stays; <b>html</b>"
    assert json.loads(msg.tool_calls[0].function.arguments) == {"to": TRICKY, "cc": [EMAIL]}  # type: ignore[index]
    assert done.choices[0].message.content.startswith("Dear <PERSON_1>")  # type: ignore[union-attr]


def _ToolCall() -> Any:
    from gatewise.types.messages import ToolCall

    return ToolCall


def text_chunk(piece: str, finish: str | None = None, index: int = 0) -> ChatCompletionChunk:
    return ChatCompletionChunk(id="x", choices=[ChunkChoice(index=index, delta=Delta(content=piece),
                                                            finish_reason=finish)])


def run(unmasker: StreamUnmasker, chunks: list[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
    out: list[ChatCompletionChunk] = []
    for c in chunks:
        out.extend(unmasker.apply(c))
    out.extend(unmasker.finish())
    return out


def joined(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


MASKED = "Hi <PERSON_1>, <PERSON_12> wrote <EMAIL_1> about <BANK_ACCOUNT_1>; keep <b> and <PERSON_99> x<"
PLAIN = f"Hi John Smith, Maria Garcia wrote {EMAIL} about 12345678; keep <b> and <PERSON_99> x<"


def test_stream_unmasking_is_exact_at_every_split_point() -> None:
    for i in range(len(MASKED) + 1):
        chunks = [text_chunk(MASKED[:i]), text_chunk(MASKED[i:])]
        assert joined(run(StreamUnmasker(MAPPING), chunks)) == PLAIN, i


def test_stream_unmasking_is_exact_at_every_pair_of_split_points() -> None:
    n = len(MASKED)
    for i in range(n + 1):
        for j in range(i, n + 1):
            chunks = [text_chunk(MASKED[:i]), text_chunk(MASKED[i:j]), text_chunk(MASKED[j:], "stop")]
            out = run(StreamUnmasker(MAPPING), chunks)
            assert joined(out) == PLAIN, (i, j)
            assert out[-1].choices[0].finish_reason == "stop"


def test_stream_unmasking_character_by_character() -> None:
    out = run(StreamUnmasker(MAPPING), [text_chunk(ch) for ch in MASKED])
    assert joined(out) == PLAIN


def test_the_stream_holds_back_only_a_possible_placeholder_prefix() -> None:
    u = StreamUnmasker(MAPPING)
    assert joined(u.apply(text_chunk("Dear <PERSON_1>, your card"))) == "Dear John Smith, your card"
    assert joined(u.apply(text_chunk(" ends in 1111 <PERS"))) == " ends in 1111 "
    assert joined(u.apply(text_chunk("ON_1>!"))) == "John Smith!"
    assert joined(u.apply(text_chunk("a < b"))) == "a < b"


def test_held_text_goes_out_before_a_usage_chunk_and_at_the_end() -> None:
    from gatewise.types.responses import Usage

    u = StreamUnmasker(MAPPING)
    first = u.apply(text_chunk("total <PER"))
    usage = ChatCompletionChunk(id="x", choices=[], usage=Usage(total_tokens=3))
    out = u.apply(usage)
    assert joined(first) == "total " and joined(out) == "<PER" and out[-1] is usage
    u.apply(text_chunk("tail <EMAIL_"))
    assert joined(u.finish()) == "<EMAIL_"


def tool_chunk(piece: str, tc_index: int = 0, first: bool = False) -> ChatCompletionChunk:
    tc = DeltaToolCall(index=tc_index, function=DeltaFunctionCall(arguments=piece))
    if first:
        tc = DeltaToolCall(index=tc_index, id="call_1", type="function",
                           function=DeltaFunctionCall(name="send", arguments=piece))
    return ChatCompletionChunk(choices=[ChunkChoice(index=0, delta=Delta(tool_calls=[tc]))])


def args_of(chunks: list[ChatCompletionChunk], tc_index: int = 0) -> str:
    return "".join(tc.function.arguments or "" for c in chunks if c.choices
                   for tc in c.choices[0].delta.tool_calls or () if tc.index == tc_index and tc.function)


def test_streamed_tool_call_arguments_are_unmasked_json_escaped_at_every_split_point() -> None:
    masked = json.dumps({"to": "<PERSON_2>", "name": "<PERSON_1>", "mail": "<EMAIL_1>"})
    want = {"to": TRICKY, "name": "John Smith", "mail": EMAIL}
    for i in range(len(masked) + 1):
        for j in (i, min(len(masked), i + 3), len(masked)):
            chunks = [tool_chunk(masked[:i], first=True), tool_chunk(masked[i:j]), tool_chunk(masked[j:])]
            chunks.append(ChatCompletionChunk(choices=[ChunkChoice(index=0, delta=Delta(),
                                                                   finish_reason="tool_calls")]))
            out = run(StreamUnmasker(MAPPING), chunks)
            assert json.loads(args_of(out)) == want, (i, j)


def test_parallel_tool_calls_are_buffered_separately() -> None:
    a = json.dumps({"n": "<PERSON_1>"})
    b = json.dumps({"n": "<PERSON_12>"})
    chunks = [tool_chunk(a[:9], 0, True), tool_chunk(b[:9], 1, True),
              tool_chunk(a[9:], 0), tool_chunk(b[9:], 1),
              ChatCompletionChunk(choices=[ChunkChoice(index=0, delta=Delta(), finish_reason="tool_calls")])]
    out = run(StreamUnmasker(MAPPING), chunks)
    assert json.loads(args_of(out, 0)) == {"n": "John Smith"}
    assert json.loads(args_of(out, 1)) == {"n": "Maria Garcia"}


def test_choices_are_unmasked_independently() -> None:
    u = StreamUnmasker(MAPPING)
    out = [*u.apply(text_chunk("a <PER", index=0)), *u.apply(text_chunk("b <EMA", index=1)),
           *u.apply(text_chunk("SON_1>", index=0)), *u.apply(text_chunk("IL_1>", index=1)), *u.finish()]
    per = {0: "", 1: ""}
    for c in out:
        for ch in c.choices:
            per[ch.index] += ch.delta.content or ""
    assert per == {0: "a John Smith", 1: f"b {EMAIL}"}
