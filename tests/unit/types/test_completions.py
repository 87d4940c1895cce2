"""The legacy completion ⇄ chat translation (`gatewise.types.completions`)."""

from __future__ import annotations

import pytest

from gatewise.errors import InvalidRequestError
from gatewise.types.completions import (
    DEFAULT_MAX_TOKENS,
    decode_completion_request,
    from_chat_chunk,
    from_chat_completion,
    to_chat_request,
)
from gatewise.types.messages import UserMessage
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice, Delta


def _decode(body: bytes) -> object:
    return decode_completion_request(body, max_depth=32)


def test_the_prompt_becomes_one_user_message_with_openais_default_max_tokens() -> None:
    req = decode_completion_request(b'{"model":"m","prompt":["hi"],"stop":"\\n","seed":7}',
                                    max_depth=32)
    chat = to_chat_request(req)
    assert chat.messages == [UserMessage(content="hi")]
    assert chat.max_tokens == DEFAULT_MAX_TOKENS == 16
    assert (chat.stop, chat.seed, chat.stream) == ("\n", 7, False)


def test_stream_options_go_only_with_a_stream() -> None:
    body = b'{"model":"m","prompt":"x","stream_options":{"include_usage":true}}'
    assert to_chat_request(decode_completion_request(body, max_depth=32)).stream_options is None


@pytest.mark.parametrize("body", [
    b'{"model":"m","prompt":"x","echo":false,"suffix":null,"logprobs":null,"best_of":1}',
    b'{"model":"m","prompt":"x","suffix":""}',
])
def test_neutral_values_of_unsupported_parameters_are_accepted(body: bytes) -> None:
    _decode(body)


@pytest.mark.parametrize(("extra", "param"), [
    (b'"echo":true', "echo"), (b'"suffix":"s"', "suffix"), (b'"logprobs":0', "logprobs"),
    (b'"best_of":2', "best_of"), (b'"unknown":1', "unknown")])
def test_anything_else_is_refused_naming_the_parameter(extra: bytes, param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        _decode(b'{"model":"m","prompt":"x",' + extra + b"}")
    assert info.value.param == param


def test_answers_and_chunks_read_as_text_completions() -> None:
    out = from_chat_completion(ChatCompletion(id="c1", model="m", choices=[
        Choice(message=ResponseMessage(content="hello"), finish_reason="tool_calls")]))
    assert (out.object, out.choices[0].text, out.choices[0].finish_reason) == (
        "text_completion", "hello", "stop")
    opening = ChatCompletionChunk(choices=[ChunkChoice(index=0, delta=Delta(role="assistant"))])
    assert from_chat_chunk(opening) is None
    last = from_chat_chunk(ChatCompletionChunk(choices=[
        ChunkChoice(index=0, delta=Delta(content="!"), finish_reason="length")]))
    assert last is not None and last.choices[0].finish_reason == "length"
