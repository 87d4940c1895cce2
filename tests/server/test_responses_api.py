"""The official `openai` SDK's `client.responses`, pointed at gatewise, works unchanged against
any provider: the in-process fake provider and OpenAI- and Anthropic-format upstreams. A
Responses request runs as an ordinary chat call (same keys, guardrails and ledger); answers
come back as Response objects, streams as the Responses event sequence, and a stored response
continues through `previous_response_id`. Bad input is a 400 in OpenAI's shape and nothing is
recorded for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

MASTER = "sk-gatewise-responses-master"
BALANCE = {"type": "function", "name": "get_balance", "description": "Balance of an account",
           "parameters": {"type": "object", "properties": {
               "account": {"type": "string"},
               "currency": {"type": "string", "enum": ["EUR", "USD"]}},
               "required": ["account", "currency"], "additionalProperties": False},
           "strict": True}
# The in-process fake provider, then fake upstreams in OpenAI's and Anthropic's format.
UPSTREAMS = ["echo", "gpt", "claude"]
TOOL_UPSTREAMS = ["tools", "gpt", "claude"]
TEXT_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
               "response.content_part.added"]
TEXT_END = ["response.output_text.done", "response.content_part.done",
            "response.output_item.done", "response.completed"]


@pytest.fixture(scope="module")
def server(openai_fake: FakeServer, anthropic_fake: FakeServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    state: Path = tmp_path_factory.mktemp("responses-edge")
    upstream = {"api_base": openai_fake.url + "/v1", "api_key": "sk-upstream"}
    config: dict[str, Any] = {
        "models": {
            "echo": [{"model": "fake/echo"}],
            "tools": [{"model": "fake/tools"}],
            "gpt": [{"model": "openai/gpt-4o-mini", **upstream}],
            "cut": [{"model": "openai/gpt-4o-mini-cut", **upstream}],
            "claude": [{"model": "anthropic/claude-3-5-haiku-latest",
                        "api_base": anthropic_fake.url, "api_key": "sk-ant-test"}],
            "quiet": [{"model": "fake/echo"}],
            "broken": [{"model": "fake/fail-429"}],
        },
        "server": {"master_key": MASTER, "max_body_bytes": 200_000},
        "storage": {"state_dir": str(state)},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
    }
    with GatewayServer(config) as srv:
        yield srv


@pytest.fixture
def client(server: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key=MASTER, max_retries=0) as c:
        yield c


def _seen(fake: FakeServer) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[-1].json()
    return body


def _records(server: GatewayServer) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/admin/usage/records?limit=1000",
                  headers={"authorization": f"Bearer {MASTER}"}, timeout=30)
    data: list[dict[str, Any]] = r.json()["data"]
    return data


# -- text ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", UPSTREAMS)
def test_a_text_input_comes_back_as_a_response(client: openai.OpenAI, model: str) -> None:
    resp = client.responses.create(model=model, input="hi there")
    assert resp.object == "response" and resp.id.startswith("resp_")
    assert resp.status == "completed" and resp.error is None
    assert resp.output_text == "Hello! You said: hi there"
    item = resp.output[0]
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert item.content[0].type == "output_text"
    assert resp.usage is not None and resp.usage.input_tokens > 0
    assert resp.usage.output_tokens == 5
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert resp.usage.input_tokens_details.cached_tokens == 0
    assert resp.usage.output_tokens_details.reasoning_tokens == 0


def test_instructions_and_items_reach_the_upstream_as_chat(
        client: openai.OpenAI, openai_fake: FakeServer) -> None:
    resp = client.responses.create(
        model="gpt", instructions="Be brief.", max_output_tokens=40, temperature=0.5,
        top_p=0.9, user="u-1", metadata={"ticket": "42"}, parallel_tool_calls=False,
        tools=[BALANCE], tool_choice="none",
        input=[{"role": "developer", "content": "Answer in English."},
               {"type": "message", "role": "user", "content": [
                   {"type": "input_text", "text": "what is this?"},
                   {"type": "input_image", "image_url": "https://example.com/a.png",
                    "detail": "low"}]}])
    body = _seen(openai_fake)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png",
                                                "detail": "low"}}]}]
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 40
    assert body["temperature"] == 0.5 and body["top_p"] == 0.9 and body["user"] == "u-1"
    assert body["tool_choice"] == "none" and body["parallel_tool_calls"] is False
    assert body["tools"][0]["function"]["name"] == "get_balance"
    # The Response echoes the request's settings.
    assert resp.instructions == "Be brief." and resp.max_output_tokens == 40
    assert resp.metadata == {"ticket": "42"} and resp.parallel_tool_calls is False
    assert resp.tools[0].type == "function" and resp.tools[0].name == "get_balance"


# -- streaming ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", UPSTREAMS)
def test_a_stream_follows_the_responses_event_sequence(
        client: openai.OpenAI, model: str) -> None:
    events = list(client.responses.create(model=model, input="stream this please",
                                          stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == TEXT_EVENTS and kinds[-4:] == TEXT_END
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello! You said: stream this please"
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == text and done.response.status == "completed"
    assert done.response.usage is not None and done.response.usage.output_tokens == 6
    created = events[0]
    assert created.type == "response.created" and created.response.status == "in_progress"
    assert created.response.id == done.response.id
    added = events[2]
    assert added.type == "response.output_item.added"
    assert added.item.id == done.response.output[0].id


def test_the_stream_helper_assembles_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt", input="helper please") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Hello! You said: helper please"
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_a_failure_mid_stream_ends_with_error_and_response_failed(
        client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="cut", input="one two three four five",
                                          stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-2:] == ["error", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error is not None and failed.response.error.message


# -- function calls -----------------------------------------------------------------------


@pytest.mark.parametrize("model", TOOL_UPSTREAMS)
def test_a_function_call_round_trip(client: openai.OpenAI, model: str) -> None:
    first = client.responses.create(model=model, input="my balance?", tools=[BALANCE],
                                    tool_choice="required")
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_balance"
    assert json.loads(calls[0].arguments) == {"account": "sample", "currency": "EUR"}
    assert calls[0].call_id and calls[0].status == "completed"
    second = client.responses.create(
        model=model, previous_response_id=first.id, tools=[BALANCE],
        input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "12 EUR"}])
    assert second.previous_response_id == first.id
    assert second.output[0].type == "message" and second.output_text
    if model == "tools":  # the fake provider answers with the tool's result
        assert second.output_text == "Tool said: 12 EUR"


def test_the_continuation_sends_the_whole_thread_upstream(
        client: openai.OpenAI, openai_fake: FakeServer) -> None:
    first = client.responses.create(model="gpt", input="my balance?", tools=[BALANCE],
                                    tool_choice={"type": "function", "name": "get_balance"},
                                    instructions="Not carried over.")
    call = first.output[0]
    assert call.type == "function_call"
    assert _seen(openai_fake)["tool_choice"] == {"type": "function",
                                                 "function": {"name": "get_balance"}}
    client.responses.create(model="gpt", previous_response_id=first.id, tools=[BALANCE],
                            input=[{"type": "function_call_output", "call_id": call.call_id,
                                    "output": "12 EUR"}])
    sent = _seen(openai_fake)["messages"]
    assert sent == [
        {"role": "user", "content": "my balance?"},
        {"role": "assistant", "tool_calls": [{
            "id": call.call_id, "type": "function",
            "function": {"name": "get_balance", "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "12 EUR"}]


def test_function_call_items_sent_back_by_hand_are_one_assistant_turn(
        client: openai.OpenAI, openai_fake: FakeServer) -> None:
    client.responses.create(model="gpt", tools=[BALANCE], input=[
        {"role": "user", "content": "two balances?"},
        {"type": "function_call", "call_id": "c1", "name": "get_balance",
         "arguments": '{"account":"a","currency":"EUR"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_balance",
         "arguments": '{"account":"b","currency":"EUR"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "1 EUR"},
        {"type": "function_call_output", "call_id": "c2", "output": "2 EUR"}])
    sent = _seen(openai_fake)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["c1", "c2"]


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_a_streamed_function_call(client: openai.OpenAI, model: str) -> None:
    events = list(client.responses.create(model=model, input="my balance?", tools=[BALANCE],
                                          tool_choice="required", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress",
                         "response.output_item.added"]
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == ["response.function_call_arguments.done",
                          "response.output_item.done", "response.completed"]
    done_args = events[-3]
    assert done_args.type == "response.function_call_arguments.done"
    deltas = "".join(e.delta for e in events
                     if e.type == "response.function_call_arguments.delta")
    assert done_args.arguments == deltas
    assert json.loads(deltas) == {"account": "sample", "currency": "EUR"}
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output[0].type == "function_call"
    assert final.response.output[0].arguments == deltas


# -- structured output --------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_a_json_schema_format_gives_json_that_fits(
        client: openai.OpenAI, openai_fake: FakeServer, model: str) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    resp = client.responses.create(model=model, input="largest city?", text={
        "format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}})
    data = json.loads(resp.output_text)
    assert set(data) == {"city", "population"} and isinstance(data["population"], int)
    assert resp.text is not None and resp.text.format is not None
    assert resp.text.format.type == "json_schema"
    if model == "gpt":
        assert _seen(openai_fake)["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True}}


# -- stored responses ---------------------------------------------------------------------


def test_previous_response_id_carries_the_conversation(
        client: openai.OpenAI, openai_fake: FakeServer) -> None:
    first = client.responses.create(model="gpt", input="my name is Ada")
    second = client.responses.create(model="gpt", input="what is my name?",
                                     previous_response_id=first.id)
    assert _seen(openai_fake)["messages"] == [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "what is my name?"}]
    got = client.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == second.output_text
    assert got.previous_response_id == first.id
    items = client.responses.input_items.list(second.id)
    assert [(i.type, i.role) for i in items.data] == [("message", "user")]  # type: ignore[union-attr]
    assert items.data[0].content[0].text == "what is my name?"  # type: ignore[union-attr]


def test_a_deleted_response_is_gone(client: openai.OpenAI) -> None:
    resp = client.responses.create(model="echo", input="short-lived")
    client.responses.delete(resp.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.retrieve(resp.id)
    assert info.value.code == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="echo", input="again", previous_response_id=resp.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(resp.id)


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    resp = client.responses.create(model="echo", input="forget me", store=False)
    assert resp.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)


def test_an_unknown_previous_response_is_a_404_and_nothing_is_recorded(
        client: openai.OpenAI, server: GatewayServer) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="quiet", input="x",
                                previous_response_id="resp_doesnotexist0000")
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert not any(r["alias"] == "quiet" for r in _records(server))


def _team_key(srv: GatewayServer, team: str) -> str:
    auth = {"authorization": f"Bearer {MASTER}"}
    httpx.post(srv.url + "/admin/teams", json={"id": team}, headers=auth, timeout=30)
    r = httpx.post(srv.url + "/admin/keys", json={"name": f"{team}-k", "team": team},
                   headers=auth, timeout=30)
    assert r.status_code < 300, r.text
    return str(r.json()["key"])


def test_another_teams_response_is_not_found(server: GatewayServer) -> None:
    red, blue = _team_key(server, "resp-red"), _team_key(server, "resp-blue")
    base = server.url + "/v1"
    with openai.OpenAI(base_url=base, api_key=red, max_retries=0) as r, \
            openai.OpenAI(base_url=base, api_key=blue, max_retries=0) as b:
        mine = r.responses.create(model="echo", input="red secret")
        assert r.responses.retrieve(mine.id).output_text == mine.output_text
        with pytest.raises(openai.NotFoundError):
            b.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            b.responses.create(model="echo", input="x", previous_response_id=mine.id)
        with pytest.raises(openai.NotFoundError):
            b.responses.delete(mine.id)
        assert r.responses.retrieve(mine.id).id == mine.id  # still there for red


def test_stored_responses_stay_out_of_the_conversations_list(
        client: openai.OpenAI, server: GatewayServer) -> None:
    resp = client.responses.create(model="echo", input="not a conversation")
    listed = httpx.get(f"{server.url}/v1/conversations",
                       headers={"authorization": f"Bearer {MASTER}"}).json()["data"]
    assert resp.id not in {c["id"] for c in listed}


# -- governance ---------------------------------------------------------------------------


def test_calls_are_governed_and_recorded_as_chat_calls(
        client: openai.OpenAI, server: GatewayServer) -> None:
    client.responses.create(model="echo", input="ledger me")
    auth = {"authorization": f"Bearer {MASTER}"}
    r = httpx.post(server.url + "/admin/keys", headers=auth, timeout=30,
                   json={"name": "resp-echo-only", "models": ["echo"], "rpm": 1})
    assert r.status_code < 300, r.text
    with openai.OpenAI(base_url=server.url + "/v1", api_key=r.json()["key"],
                       max_retries=0) as limited:
        with pytest.raises(openai.PermissionDeniedError):  # the key's model list
            limited.responses.create(model="gpt", input="not mine")
        limited.responses.create(model="echo", input="one a minute")
        with pytest.raises(openai.RateLimitError):  # the key's rate limit
            limited.responses.create(model="echo", input="too soon")
    records = _records(server)
    assert any(r["alias"] == "echo" and r["outcome"] == "success" for r in records)


def test_an_upstream_failure_keeps_its_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.responses.create(model="broken", input="x")
    assert info.value.response.headers.get("retry-after") == "1"
    with pytest.raises(openai.RateLimitError):  # before the first event: a plain HTTP error
        client.responses.create(model="broken", input="x", stream=True)


def test_a_wrong_key_is_an_authentication_error(server: GatewayServer) -> None:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0) as c, \
            pytest.raises(openai.AuthenticationError):
        c.responses.create(model="echo", input="x")


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "param"), [
    ({"input": 5}, "input"),
    ({"input": []}, "input"),
    ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0]"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": [{"type": "input_video"}]}]},
     "input[0].content[0]"),
    ({"input": [{"role": "system", "content": [
        {"type": "input_image", "image_url": "https://example.com/a.png"}]}]},
     "input[0].content[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0]"),
    ({"input": [{"type": "function_call_output", "call_id": "nope", "output": "1"}]},
     "messages[0].tool_call_id"),
    ({"input": "x", "colour": "red"}, "colour"),
    ({"input": "x", "temperature": 3}, "temperature"),
    ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0]"),
    ({"input": "x", "tool_choice": "required"}, "tool_choice"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "name": "x",
                                        "schema": "not a schema"}}}, "text.format.schema"),
    ({"input": "x", "metadata": {"k": "v" * 600}}, "metadata"),
    ({"input": "x", "previous_response_id": "chatcmpl-1"}, "previous_response_id"),
    ({"input": "x", "background": True}, "background"),
    ({"input": "nul \u0000 byte"}, None),
    ({"input": [{"role": "user", "content": [{"type": "input_text",
                                               "text": "nul \u0000"}]}]}, None),
])
def test_bad_input_is_a_400_in_openai_shape_and_nothing_is_recorded(
        server: GatewayServer, body: dict[str, Any], param: str | None) -> None:
    r = httpx.post(f"{server.url}/v1/responses", json={"model": "quiet", **body},
                   headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    if param is not None:
        assert param in (err["param"] or "") or param in err["message"], err
    assert not any(rec["alias"] == "quiet" for rec in _records(server))


def test_hostile_bodies_are_refused_without_a_500(server: GatewayServer) -> None:
    headers = {"authorization": f"Bearer {MASTER}", "content-type": "application/json"}
    deep = b'{"model": "quiet", "input": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for raw, status in [(b"not json", 400), (b"[1, 2]", 400), (b"\x00\x01", 400),
                        (b'{"model": "quiet", "input": "\\\\u0000 is fine text"}', 200),
                        (deep, 400), (b'{"model": "quiet", "input": "' + b"a" * 300_000
                                      + b'"}', 413)]:
        r = httpx.post(f"{server.url}/v1/responses", content=raw, headers=headers)
        assert r.status_code == status, (raw[:40], r.text[:300])
        if status != 200:
            assert r.json()["error"]["type"] in ("invalid_request_error", "request_too_large",
                                                  "invalid_request"), r.text
    assert sum(rec["alias"] == "quiet" for rec in _records(server)) == 1  # the one that passed


def test_stored_response_routes_refuse_bad_paths_and_parameters(
        client: openai.OpenAI, server: GatewayServer) -> None:
    auth = {"authorization": f"Bearer {MASTER}"}
    resp = client.responses.create(model="echo", input="paths")
    base = f"{server.url}/v1/responses/{resp.id}"
    assert httpx.get(f"{server.url}/v1/responses/not-an-id", headers=auth).status_code == 404
    assert httpx.get(base + "/input_items?limit=0", headers=auth).status_code == 400
    assert httpx.get(base + "/input_items?order=up", headers=auth).status_code == 400
    past = httpx.get(base + "/input_items?after=nope", headers=auth)
    assert past.status_code == 200 and past.json()["data"] == []
    put = httpx.put(base, headers=auth)
    assert put.status_code == 405 and put.headers["allow"] == "DELETE, GET"
    assert httpx.post(base + "/input_items", headers=auth).status_code == 405


def test_the_openapi_document_describes_the_routes(server: GatewayServer) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    assert set(doc["paths"]["/v1/responses"]) == {"post"}
    assert set(doc["paths"]["/v1/responses/{response_id}"]) == {"get", "delete"}
    assert "/v1/responses/{response_id}/input_items" in doc["paths"]
    schemas = doc["components"]["schemas"]
    assert "ResponsesRequestIn" in schemas and "ResponseObject" in schemas
    # The chat types keep their own components (no name taken over by a Responses part).
    assert schemas["RefusalPart"]["properties"]["type"] == {"enum": ["refusal"]}
