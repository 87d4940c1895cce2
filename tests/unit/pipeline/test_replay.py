"""A finished completion replayed as a stream: the one way stale answers, escalations,
orchestrations (and, later, cache hits) stream an answer that is already whole."""

from __future__ import annotations

from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream, replay_completion, stream_completion
from gatewise.types import ChatCompletion, ChatCompletionChunk, Choice, ResponseMessage, Usage
from gatewise.types.messages import FunctionCall, ToolCall
from gatewise.types.validation import chat_request_from_dict


def _completion(content: str | None = None, refusal: str | None = None,
                tool_calls: list[ToolCall] | None = None) -> ChatCompletion:
    msg = ResponseMessage(content=content, refusal=refusal, tool_calls=tool_calls)
    return ChatCompletion(id="chatcmpl-1", created=7, model="m",
                          choices=[Choice(index=0, message=msg, finish_reason=None)],
                          usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5))


def _call(include_usage: bool) -> Call:
    body: dict[str, object] = {"model": "m", "stream": True,
                               "messages": [{"role": "user", "content": "x"}]}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return Call("chat", chat_request_from_dict(body))


async def _all(c: ChatCompletion, *, usage: bool = True) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in replay_completion(c, usage=usage)]


async def test_each_choice_is_one_delta_then_a_finish_then_the_usage_chunk() -> None:
    chunks = await _all(_completion(content="Hello", refusal=None))
    first, finish, usage = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == "Hello"
    assert finish.choices[0].finish_reason == "stop"  # a stream always says why it ended
    assert usage.choices == [] and usage.usage is not None and usage.usage.total_tokens == 5
    assert {c.id for c in chunks} == {"chatcmpl-1"} and {c.created for c in chunks} == {7}


async def test_tool_calls_and_refusals_travel_in_the_first_delta() -> None:
    call = ToolCall(id="call_1", type="function",
                    function=FunctionCall(name="lookup", arguments='{"q": 1}'))
    chunks = await _all(_completion(tool_calls=[call], refusal="no"))
    delta = chunks[0].choices[0].delta
    assert delta.refusal == "no" and delta.tool_calls is not None
    tc = delta.tool_calls[0]
    assert (tc.index, tc.id) == (0, "call_1")
    assert tc.function is not None and (tc.function.name, tc.function.arguments) == \
        ("lookup", '{"q": 1}')


async def test_the_usage_chunk_can_be_left_out() -> None:
    chunks = await _all(_completion(content="Hi"), usage=False)
    assert all(c.choices for c in chunks) and len(chunks) == 2


async def test_a_completion_without_a_timestamp_is_stamped_now() -> None:
    c = _completion(content="Hi")
    c.created = 0
    assert all(chunk.created > 0 for chunk in await _all(c))


async def test_stream_completion_records_usage_and_hides_it_unless_asked() -> None:
    call = _call(include_usage=False)
    stream = await stream_completion(call, _completion(content="Hi"))
    assert isinstance(stream, ChunkStream)
    chunks = [c async for c in stream]
    assert [c.choices[0].delta.content for c in chunks] == ["Hi", None]
    assert call.usage is not None and call.usage.total_tokens == 5
    asked = _call(include_usage=True)
    shown = [c async for c in await stream_completion(asked, _completion(content="Hi"))]
    assert shown[-1].choices == [] and shown[-1].usage is not None
