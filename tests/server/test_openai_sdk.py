"""The official `openai` SDK, pointed at gatewise, works unchanged and raises its own typed
errors for mapped failures."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

MASTER = "sk-gatewise-test-master"


@pytest.fixture(scope="module")
def gateway(openai_fake: FakeServer) -> Iterator[GatewayServer]:
    base = openai_fake.url + "/v1"
    dep = {"api_base": base, "api_key": "sk-upstream"}
    config = {
        "models": {
            "gpt": [{"model": "openai/gpt-4o-mini", **dep}],
            "embedder": [{"model": "openai/text-embedding-3-small", **dep}],
            **{f"broken-{k}": [{"model": f"openai/gpt-fail-{k}", **dep}]
               for k in ("401", "404", "429", "500", "529", "context")},
            "garbage": [{"model": "openai/gpt-malformed", **dep}],
            "cut": [{"model": "openai/gpt-cut", **dep}],
            "reset": [{"model": "openai/gpt-reset", **dep}],
        },
        "server": {"master_key": MASTER, "max_body_bytes": 200_000},
        # These tests check how each failure reaches the SDK, so nothing retries or trips.
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
    }
    with GatewayServer(config) as srv:
        yield srv


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER, max_retries=0) as c:
        yield c


def test_chat_completion_round_trips(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi there"}])
    assert out.choices[0].message.content == "Hello! You said: hi there"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.total_tokens == out.usage.prompt_tokens + 5


def test_response_headers_name_the_deployment_and_overhead(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt", messages=[{"role": "user", "content": "x"}])
    assert raw.headers["x-gatewise-deployment"] == "gpt:openai/gpt-4o-mini"
    assert raw.headers["x-request-id"].startswith("req_")
    assert float(raw.headers["x-gatewise-overhead-ms"]) >= 0


def test_streaming_joins_to_the_full_answer_and_ends_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "stream this please"}],
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! You said: stream this please"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


def test_streaming_without_include_usage_hides_the_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "a"}], stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_tool_calls_come_back_as_openai_tool_calls(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_balance", "description": "Balance of an account",
        "parameters": {"type": "object", "properties": {
            "account": {"type": "string"}, "currency": {"type": "string", "enum": ["EUR", "USD"]}},
            "required": ["account"]}}}]
    out = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "my balance?"}], tools=tools,
        tool_choice="required")
    call = out.choices[0].message.tool_calls[0]
    assert out.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_balance"
    assert json.loads(call.function.arguments) == {"account": "sample", "currency": "EUR"}


def test_json_schema_output_parses(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"},
                                               "words": {"type": "integer"}},
              "required": ["title", "words"], "additionalProperties": False}
    out = client.chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "title?"}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "title", "schema": schema, "strict": True}})
    assert json.loads(out.choices[0].message.content or "") == {"title": "sample", "words": 42}


def test_embeddings(client: openai.OpenAI) -> None:
    out = client.embeddings.create(model="embedder", input=["one", "two"])
    assert [d.index for d in out.data] == [0, 1]
    assert len(out.data[0].embedding) == 8
    assert out.usage.prompt_tokens == 2


def test_models_lists_aliases(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "gpt" in ids and "embedder" in ids


@pytest.mark.parametrize(("model", "exc", "status"), [
    ("broken-401", openai.AuthenticationError, 401),
    ("broken-404", openai.NotFoundError, 404),
    ("broken-429", openai.RateLimitError, 429),
    ("broken-context", openai.BadRequestError, 400),
    ("broken-500", openai.InternalServerError, 502),
    ("broken-529", openai.InternalServerError, 503),
    ("garbage", openai.InternalServerError, 502),
    ("cut", openai.InternalServerError, 502),
    ("reset", openai.InternalServerError, 502),
])
def test_upstream_failures_raise_the_sdks_typed_errors(client, model, exc, status) -> None:
    with pytest.raises(exc) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == status
    body = info.value.body
    assert isinstance(body, dict) and body["message"]


def test_rate_limit_carries_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="broken-429",
                                       messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "7"


def test_failure_before_first_byte_of_a_stream_is_an_http_error(client) -> None:
    with pytest.raises(openai.AuthenticationError):
        list(client.chat.completions.create(
            model="broken-401", messages=[{"role": "user", "content": "x"}], stream=True))


def test_stream_cut_midway_ends_with_an_error_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="cut", messages=[{"role": "user", "content": "a b c d e f"}], stream=True)
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert "stream ended" in str(info.value)


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"model": "gpt", "messages": []}, "messages"),
    ({"model": "gpt", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": "gpt", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "gpt", "messages": [{"role": "user", "content": "x"}], "temperature": 9},
     "temperature"),
    ({"model": "gpt", "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "bad name!", "parameters": {}}}]},
     "tools[0].function.name"),
    ({"model": "gpt", "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "list"}}}]},
     "tools[0].function.parameters.type"),
])
def test_bad_input_is_a_400_naming_the_field(client, kwargs, param) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**kwargs)
    assert info.value.status_code == 400
    assert info.value.body["param"] == param


def test_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "model_not_found"


def test_wrong_gateway_key_is_a_401(gateway: GatewayServer) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-wrong", max_retries=0) as bad, \
            pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])


def test_oversized_body_is_a_413(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt",
                                       messages=[{"role": "user", "content": "x" * 300_000}])
    assert info.value.status_code == 413
