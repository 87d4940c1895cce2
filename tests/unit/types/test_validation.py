"""Bad input is refused at the edge with a message naming the field."""

from __future__ import annotations

import pytest

from gatewise.errors import InvalidRequestError
from gatewise.types import AssistantMessage, ImagePart, ToolMessage, UserMessage
from gatewise.types.validation import decode_chat_request, decode_embedding_request

USER = b'[{"role":"user","content":"hi"}]'


def _req(extra: str = "", messages: bytes = USER) -> bytes:
    return b'{"model":"m","messages":' + messages + extra.encode() + b"}"


def test_a_full_openai_request_decodes_into_typed_messages() -> None:
    req = decode_chat_request(b"""{"model":"m","messages":[
      {"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"what is this?"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
        "function":{"name":"look","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"a cat"}],
      "tools":[{"type":"function","function":{"name":"look","parameters":{"type":"object"}}}],
      "tool_choice":{"type":"function","function":{"name":"look"}},
      "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},
      "stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":50,
      "stop":["\\n"],"seed":1,"n":1,"user":"u1","metadata":{"k":"v"}}""")
    assert isinstance(req.messages[1], UserMessage)
    assert isinstance(req.messages[1].content[1], ImagePart)
    assert isinstance(req.messages[2], AssistantMessage) and req.messages[2].tool_calls
    assert isinstance(req.messages[3], ToolMessage)
    assert req.output_limit == 50 and req.wants_usage_in_stream


@pytest.mark.parametrize(("body", "param"), [
    (_req(messages=b"[]"), "messages"),
    (_req(messages=b'[{"role":"wizard","content":"x"}]'), "messages[0].role"),
    (_req(messages=b'[{"role":"user"}]'), "messages[0].content"),
    (_req(messages=b'[{"role":"user","content":[{"type":"video","url":"x"}]}]'),
     "messages[0].content[0].type"),
    (_req(',"temperature":"hot"'), "temperature"),
    (_req(',"max_tokens":0'), "max_tokens"),
    (_req(',"n":0'), "n"),
    (_req(',"frobnicate":1'), "frobnicate"),
    (_req(',"tool_choice":"required"'), "tool_choice"),
    (_req(',"tools":[{"type":"function","function":{"name":"a"}}],'
          '"tool_choice":{"type":"function","function":{"name":"b"}}'), "tool_choice.function.name"),
    (_req(',"tools":[{"type":"function","function":{"name":"a","parameters":{"type":"string"}}}]'),
     "tools[0].function.parameters.type"),
    (_req(',"tools":[{"type":"function","function":{"name":"a","parameters":'
          '{"type":"object","properties":{"x":{"type":"strng"}}}}}]'),
     "tools[0].function.parameters.properties.x.type"),
    (_req(',"stream_options":{"include_usage":true}'), "stream_options"),
    (_req(messages=b'[{"role":"tool","tool_call_id":"zz","content":"x"}]'),
     "messages[0].tool_call_id"),
    (b'{"messages":[{"role":"user","content":"x"}]}', "model"),
])
def test_invalid_requests_name_the_field(body: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode_chat_request(body)
    assert info.value.status == 400
    assert info.value.param == param


def test_malformed_json_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode_chat_request(b'{"model": "m", "messages": [')
    assert info.value.code == "invalid_json"


@pytest.mark.parametrize("body", [
    b'{"model":"e","input":""}', b'{"model":"e","input":[]}', b'{"model":"e","input":[1,"a"]}',
    b'{"model":"e","input":[[1],[]]}', b'{"model":"e","input":{"a":1}}',
])
def test_bad_embedding_inputs_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode_embedding_request(body)
    assert info.value.param == "input"


def test_embedding_inputs_of_every_openai_shape_are_accepted() -> None:
    for body in (b'"a"', b'["a","b"]', b"[1,2,3]", b"[[1,2],[3]]"):
        assert decode_embedding_request(b'{"model":"e","input":' + body + b"}").model == "e"
