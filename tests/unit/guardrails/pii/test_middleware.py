"""`PIIMiddleware` in a real chain: the next handler only ever sees placeholders, the caller
gets values back (complete or streamed), decisions become events without values, a `block`
stops the call, and a conversation keeps its placeholders across turns and replicas."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from typing import Any

import msgspec
import pytest

from gatewise.errors import PIIViolation
from gatewise.guardrails.pii import Finding, PIIDetector, PIIMiddleware, PIIPolicy
from gatewise.pipeline.core import Call, Identity, build_chain
from gatewise.pipeline.stream import ChunkStream
from gatewise.storage.memory import MemoryKV
from gatewise.types.messages import text_of
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice, Delta
from gatewise.types.validation import chat_request_from_dict

EMAIL = "john.smith@example.com"
CARD = "4111 1111 1111 1111"


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, kind: str, action: str, *, request_id: str | None = None,
             tenant: str | None = None, key_id: str | None = None,
             detail: dict[str, Any] | None = None) -> None:
        self.seen.append((kind, action, dict(detail or {}, tenant=tenant)))


class EchoUpstream:
    """The terminal handler: records what it was sent and echoes the last user text back."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.threads: list[str] = []

    async def __call__(self, call: Call) -> Any:
        req = call.chat_request
        self.sent.append(msgspec.json.encode(req).decode())
        text = "You said: " + text_of(req.messages[-1].content)
        if not req.stream:
            return ChatCompletion(choices=[Choice(finish_reason="stop",
                                                  message=ResponseMessage(content=text))])

        async def source() -> AsyncIterator[ChatCompletionChunk]:
            for i in range(0, len(text), 3):
                yield ChatCompletionChunk(choices=[ChunkChoice(index=0, delta=Delta(content=text[i:i + 3]))])
            yield ChatCompletionChunk(choices=[ChunkChoice(index=0, delta=Delta(), finish_reason="stop")])

        stream = ChunkStream(call, source(), include_usage=False)
        await stream.prefetch()
        return stream


@pytest.fixture(scope="module")
def guard() -> Iterator[PIIMiddleware]:
    mw = PIIMiddleware(PIIPolicy(entities={"US_SSN": "block"}))
    yield mw
    mw.close()


def make_call(text: str, *, stream: bool = False, conversation: str | None = None,
              tenant: str = "acme") -> Call:
    req = chat_request_from_dict({"model": "m", "stream": stream,
                                  "messages": [{"role": "user", "content": text}]})
    call = Call("chat", req, Identity(tenant=tenant, key_id="key_1"))
    call.conversation = conversation
    return call


async def test_upstream_sees_placeholders_and_the_caller_gets_values_back(guard: PIIMiddleware) -> None:
    up = EchoUpstream()
    events = Events()
    mw = PIIMiddleware(guard.policy, events=events)
    call = make_call(f"mail {EMAIL}, card {CARD}")
    out = await build_chain([mw], up)(call)
    assert EMAIL not in up.sent[0] and CARD not in up.sent[0]
    assert "<EMAIL_1>" in up.sent[0] and "<CARD_1>" in up.sent[0]
    assert out.choices[0].message.content == f"You said: mail {EMAIL}, card {CARD}"
    assert events.seen == [("pii", "mask", {"entities": {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1},
                                            "actions": {"mask": 2}, "tenant": "acme"})]
    assert call.events[-1][0] == "pii" and EMAIL not in repr(call.events)


async def test_a_streamed_answer_is_unmasked(guard: PIIMiddleware) -> None:
    up = EchoUpstream()
    stream = await build_chain([guard], up)(make_call(f"mail {EMAIL} now", stream=True))
    assert isinstance(stream, ChunkStream)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == f"You said: mail {EMAIL} now"
    assert EMAIL not in up.sent[0]


async def test_a_request_without_pii_passes_through_untouched(guard: PIIMiddleware) -> None:
    up = EchoUpstream()
    call = make_call("hello there")
    original = call.request
    seen: list[object] = []

    async def terminal(c: Call) -> Any:
        seen.append(c.request)
        return await up(c)

    await build_chain([guard], terminal)(call)
    assert seen == [original] and seen[0] is original and call.events == []


async def test_a_blocked_entity_fails_the_call_naming_only_its_type() -> None:
    up = EchoUpstream()
    events = Events()
    mw = PIIMiddleware(PIIPolicy(entities={"US_SSN": "block"}), events=events)
    with pytest.raises(PIIViolation) as err:
        await build_chain([mw], up)(make_call("my ssn is 536-22-8726"))
    assert "US_SSN" in str(err.value) and "536-22-8726" not in str(err.value)
    assert up.sent == [] and events.seen[0][1] == "block"


async def test_a_conversation_keeps_its_placeholders_across_turns_and_replicas() -> None:
    store = MemoryKV()
    policy = PIIPolicy()
    up = EchoUpstream()
    first = PIIMiddleware(policy, vault_store=store)
    await build_chain([first], up)(make_call(f"I am {EMAIL}", conversation="c1"))
    await build_chain([first], up)(make_call(f"card {CARD}", conversation="c1"))
    replica = PIIMiddleware(policy, vault_store=store)
    out = await build_chain([replica], up)(make_call(f"again {EMAIL} and {CARD}", conversation="c1"))
    assert up.sent[2].count("<EMAIL_1>") == 1 and up.sent[2].count("<CARD_1>") == 1
    assert out.choices[0].message.content == f"You said: again {EMAIL} and {CARD}"
    # another tenant with the same conversation id shares nothing
    other = await build_chain([replica], up)(make_call(f"card {CARD}", conversation="c1", tenant="globex"))
    assert "<CARD_1>" in up.sent[3] and other.choices[0].message.content == f"You said: card {CARD}"
    assert await store.get("vault:globex:c1") != await store.get("vault:acme:c1")


class ThreadSpy:
    """The real detector, noting which thread each text is scanned on."""

    def __init__(self, inner: PIIDetector) -> None:
        self.inner = inner
        self.threads: list[str] = []

    def find(self, text: str) -> list[Finding]:
        self.threads.append(threading.current_thread().name)
        return self.inner.find(text)


async def spied(mw: PIIMiddleware) -> ThreadSpy:
    spy = ThreadSpy(await asyncio.wrap_future(mw.detector_future()))
    done: Future[Any] = Future()
    done.set_result(spy)
    mw._detector = done
    return spy


async def test_a_long_request_is_masked_off_the_event_loop_and_a_short_one_inline() -> None:
    loop_thread = threading.current_thread().name
    up = EchoUpstream()
    mw = PIIMiddleware(PIIPolicy(), offload_chars=200)
    spy = await spied(mw)
    await build_chain([mw], up)(make_call(f"mail {EMAIL}"))
    assert spy.threads == [loop_thread]
    spy.threads.clear()
    long_text = f"mail {EMAIL} " + "and some ordinary words " * 10
    assert len(long_text) > 200
    await build_chain([mw], up)(make_call(long_text))
    assert spy.threads and all(t != loop_thread and t.startswith("gatewise-pii") for t in spy.threads)
    assert "<EMAIL_1>" in up.sent[1] and EMAIL not in up.sent[1]
    mw.close()


def test_with_ner_every_request_is_masked_off_the_event_loop() -> None:
    assert PIIMiddleware(PIIPolicy(use_ner=True)).offload_chars == 0
    assert 0 < PIIMiddleware(PIIPolicy()).offload_chars < 1024


async def test_the_analyzer_is_built_once_per_guard() -> None:
    mw = PIIMiddleware(PIIPolicy())
    up = EchoUpstream()
    await build_chain([mw], up)(make_call(f"mail {EMAIL}"))
    fut = mw.detector_future()
    await build_chain([mw], up)(make_call("plain"))
    assert mw.detector_future() is fut
    mw.close()


async def test_embedding_calls_are_not_touched(guard: PIIMiddleware) -> None:
    from gatewise.types.validation import embedding_request_from_dict

    req = embedding_request_from_dict({"model": "e", "input": EMAIL})
    seen: list[object] = []

    async def terminal(c: Call) -> Any:
        seen.append(c.request)
        return "ok"

    assert await build_chain([guard], terminal)(Call("embed", req)) == "ok"
    assert seen == [req]
