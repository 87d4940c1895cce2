"""Hostile and nonsensical request bodies through the real server (issue 9, defects 3 and 8):
each is a 400 in OpenAI's error shape naming the field, never a 500 and never forwarded; the
OpenAPI document states the same limits; a wrong method gets a 405 with `Allow`.

Deep nesting is cut at the edge (`server.max_json_depth`, 64 by default), before any parser
or walker recurses; at the highest depth an operator may configure, every walker after the
edge (schema checks, capability sizing, the PII and injection guardrails, the fake provider's
schema sampler) still copes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewise.types.depth import MAX_JSON_DEPTH_LIMIT
from tests.fakes.gateway import GatewayServer

MASTER = "sk-master-validation"
AUTH = {"authorization": f"Bearer {MASTER}"}
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    state: Path = tmp_path_factory.mktemp("validation")
    cfg = {"models": {"chat": [{"model": "fake/echo"}], "tools": [{"model": "fake/tools"}]},
           "server": {"master_key": MASTER, "warmup": False},
           "storage": {"state_dir": str(state)}}
    with GatewayServer(cfg) as srv:
        yield srv


def _post(srv: GatewayServer, path: str, body: bytes | dict[str, Any]) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(srv.url + path, content=content, timeout=30,
                      headers={**AUTH, "content-type": "application/json"})


def _refused(r: httpx.Response, param_prefix: str, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == 400, r.text[:500]
    error: dict[str, Any] = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert isinstance(error["param"], str) and error["param"].startswith(param_prefix), error
    if code is not None:
        assert error["code"] == code
    return error


def _nested(levels: int) -> bytes:
    """`levels` arrays inside each other, as raw JSON (json.dumps itself would recurse)."""
    return b"[" * levels + b"]" * levels


def _chat_with(field: str, value: bytes) -> bytes:
    return b'{"model":"chat","messages":[{"role":"user","content":"hi"}],"' + \
        field.encode() + b'":' + value + b"}"


def _schema_chain(levels: int) -> dict[str, Any]:
    """A JSON schema whose `properties` nest `levels` times (two JSON levels each)."""
    node: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        node = {"type": "object", "properties": {"a": node}}
    return node


# -- defect 3: deeply nested JSON --------------------------------------------------------------

@pytest.mark.parametrize("levels", [2_000, 10_000])
@pytest.mark.parametrize("field", ["web_search_options", "prediction", "audio"])
def test_deep_nesting_in_a_free_form_field_is_a_400_naming_it(
        server: GatewayServer, field: str, levels: int) -> None:
    body = _chat_with(field, b'{"x":' + _nested(levels) + b"}")
    error = _refused(_post(server, "/v1/chat/completions", body), f"{field}.x[0]",
                     "nesting_too_deep")
    assert "64 levels" in error["message"]


@pytest.mark.parametrize("levels", [500, 5_000])
def test_a_deeply_nested_tool_schema_is_a_400_naming_the_tool(
        server: GatewayServer, levels: int) -> None:
    tool = {"type": "function", "function": {"name": "t", "parameters": _schema_chain(levels // 2)}}
    body = json.dumps({"model": "tools", "messages": USER, "tools": [tool]}).encode() \
        if levels < 900 else _deep_tool_body(levels)
    _refused(_post(server, "/v1/chat/completions", body), "tools[0].function.parameters",
             "nesting_too_deep")


def _deep_tool_body(levels: int) -> bytes:
    chain = b'{"type":"object","properties":{"a":' * (levels // 2) + b'{"type":"string"}' + \
        b"}}" * (levels // 2)
    return b'{"model":"tools","messages":[{"role":"user","content":"hi"}],"tools":[{"type":' \
        b'"function","function":{"name":"t","parameters":' + chain + b"}}]}"


def test_a_deeply_nested_response_format_schema_is_a_400(server: GatewayServer) -> None:
    schema = b'{"type":"object","properties":{"a":{"items":' + b'{"items":' * 3_000 + b"{}" + \
        b"}" * 3_000 + b"}}}"
    body = _chat_with("response_format",
                      b'{"type":"json_schema","json_schema":{"name":"s","schema":' + schema + b"}}")
    _refused(_post(server, "/v1/chat/completions", body), "response_format.json_schema.schema",
             "nesting_too_deep")


@pytest.mark.parametrize("levels", [2_000, 10_000])
def test_deeply_nested_embeddings_input_is_a_400(server: GatewayServer, levels: int) -> None:
    body = b'{"model":"chat","input":' + _nested(levels) + b"}"
    _refused(_post(server, "/v1/embeddings", body), "input", "nesting_too_deep")


def test_json_inside_strings_that_adapters_parse_is_held_to_the_same_depth(
        server: GatewayServer) -> None:
    deep = "[" * 100 + "]" * 100
    call = {"id": "c1", "type": "function", "function": {"name": "t", "arguments": deep}}
    history = [*USER, {"role": "assistant", "tool_calls": [call]}]
    r = _post(server, "/v1/chat/completions", {"model": "chat", "messages": history})
    _refused(r, "messages[1].tool_calls[0].function.arguments", "nesting_too_deep")
    answered = [*history[:1], {"role": "assistant", "tool_calls": [{**call, "function": {
        "name": "t", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": deep}]
    r = _post(server, "/v1/chat/completions", {"model": "chat", "messages": answered})
    _refused(r, "messages[2].content", "nesting_too_deep")


def test_brackets_inside_strings_do_not_count_as_nesting(server: GatewayServer) -> None:
    text = "[" * 500 + " {" * 500 + '\\" ]'
    r = _post(server, "/v1/chat/completions", {"model": "chat", "messages": [
        {"role": "user", "content": text}], "prediction": {"type": "content", "content": text}})
    assert r.status_code == 200, r.text[:300]


def test_the_depth_limit_is_configurable_and_exact(tmp_path: Path) -> None:
    cfg = {"models": {"chat": [{"model": "fake/echo"}]},
           "server": {"master_key": MASTER, "warmup": False, "max_json_depth": 16},
           "storage": {"state_dir": str(tmp_path)}}
    with GatewayServer(cfg) as srv:
        # The body is level 1, `prediction` 2: 14 more arrays reach exactly 16.
        ok = _post(srv, "/v1/chat/completions", _chat_with("prediction", b'{"x":' + _nested(14) + b"}"))
        assert ok.status_code == 200, ok.text[:300]
        too = _post(srv, "/v1/chat/completions", _chat_with("prediction", b'{"x":' + _nested(15) + b"}"))
        assert "16 levels" in _refused(too, "prediction.x", "nesting_too_deep")["message"]


def test_at_the_highest_configurable_depth_every_walker_after_the_edge_copes(
        tmp_path: Path) -> None:
    """`max_json_depth` at its maximum: a request using all of it in a tool schema, tool-call
    arguments and a tool result passes schema checks, capability sizing, the PII and injection
    guardrails (which parse tool arguments) and the fake provider's schema sampler."""
    limit = MAX_JSON_DEPTH_LIMIT
    cfg = {"models": {"tools": [{"model": "fake/tools"}]},
           "server": {"master_key": MASTER, "warmup": False, "max_json_depth": limit},
           "storage": {"state_dir": str(tmp_path)},
           "guardrails": {"aliases": {"tools": {"pii": {}, "injection": {}}}}}
    # body, tools, [0], function, parameters: 5 levels; then two per schema level.
    tool = {"type": "function", "function": {"name": "t",
                                             "parameters": _schema_chain((limit - 5) // 2)}}
    # Arguments and tool results are JSON of their own, checked (and parsed) on their own.
    args = json.dumps(_nested_dict(limit))
    call = {"id": "c1", "type": "function", "function": {"name": "t", "arguments": args}}
    messages = [*USER, {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": args},
                {"role": "user", "content": "again"}]
    body = {"model": "tools", "messages": messages, "tools": [tool],
            "prediction": {"type": "content", "x": _nested_dict(limit - 2)}}
    with GatewayServer(cfg) as srv:
        r = _post(srv, "/v1/chat/completions", body)
        assert r.status_code == 200, r.text[:300]
        assert r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "t"


def _nested_dict(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"email": "someone@example.com"}
    for _ in range(levels - 1):
        node = {"a": node}
    return node


# -- defect 8: nonsensical values --------------------------------------------------------------

BIG = 2**64


@pytest.mark.parametrize(("extra", "param"), [
    ({"max_tokens": BIG}, "max_tokens"),
    ({"max_tokens": 2**31}, "max_tokens"),
    ({"max_completion_tokens": BIG}, "max_completion_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"seed": 2**63}, "seed"),
    ({"logit_bias": {str(BIG): 5}}, "logit_bias"),
    ({"logit_bias": {"10000000": 5}}, "logit_bias"),
    ({"logit_bias": {"-1": 5}}, "logit_bias"),
    ({"logit_bias": {"50256": 101}}, "logit_bias"),
    ({"logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias"),
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"presence_penalty": -3}, "presence_penalty"),
    ({"frequency_penalty": 3}, "frequency_penalty"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"n": 129}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"metadata": {"k" * 65: "v"}}, "metadata"),
    ({"tools": []}, "tools"),
    ({"model": "m" * 257}, "model"),
])
def test_nonsensical_chat_values_are_a_400_naming_the_field(
        server: GatewayServer, extra: dict[str, Any], param: str) -> None:
    r = _post(server, "/v1/chat/completions", {"model": "chat", "messages": USER, **extra})
    _refused(r, param)


@pytest.mark.parametrize(("extra", "param"), [
    ({"dimensions": 0}, "dimensions"),
    ({"dimensions": BIG}, "dimensions"),
    ({"input": ""}, "input"),
    ({"input": []}, "input"),
    ({"input": ["x"] * 2049}, "input"),
    ({"input": [1, -1]}, "input"),
    ({"input": [[BIG]]}, "input"),
    ({"input": [[1], []]}, "input"),
])
def test_nonsensical_embeddings_values_are_a_400_naming_the_field(
        server: GatewayServer, extra: dict[str, Any], param: str) -> None:
    r = _post(server, "/v1/embeddings", {"model": "chat", "input": "x", **extra})
    _refused(r, param)


def test_an_empty_messages_list_is_a_400_and_the_document_says_so(server: GatewayServer) -> None:
    _refused(_post(server, "/v1/chat/completions", {"model": "chat", "messages": []}), "messages")
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    schemas = doc["components"]["schemas"]
    assert schemas["ChatRequest"]["properties"]["messages"]["minItems"] == 1
    shapes = schemas["EmbeddingRequest"]["properties"]["input"]["oneOf"]
    assert shapes[0] == {"type": "string", "minLength": 1, "description": "one text"}
    assert all(s["minItems"] == 1 and s["maxItems"] == 2048 for s in shapes[1:])


def test_the_document_states_the_ranges_the_server_enforces(server: GatewayServer) -> None:
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    props = doc["components"]["schemas"]["ChatRequest"]["properties"]

    def branch(name: str) -> dict[str, Any]:
        return next(s for s in props[name]["anyOf"] if s.get("type") != "null")

    assert branch("max_tokens") == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert branch("temperature") == {"type": "number", "minimum": 0.0, "maximum": 2.0}
    assert branch("seed") == {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
    bias = branch("logit_bias")
    assert bias["maxProperties"] == 300 and bias["propertyNames"]["pattern"]
    assert bias["additionalProperties"] == {"type": "number", "minimum": -100.0, "maximum": 100.0}


def test_whole_numbers_spelled_as_floats_are_integers(server: GatewayServer) -> None:
    """JSON Schema (and Python's `json.dumps(2.0)`) call 2.0 an integer; so does the server."""
    r = _post(server, "/v1/chat/completions", {"model": "chat", "messages": USER,
                                               "max_tokens": 5.0, "n": 1.0})
    assert r.status_code == 200, r.text[:300]
    r = _post(server, "/v1/embeddings", {"model": "chat", "input": [[1.0, 2.0]], "dimensions": 8.0})
    assert r.status_code == 200, r.text[:300]
    _refused(_post(server, "/v1/chat/completions", {"model": "chat", "messages": USER,
                                                    "max_tokens": 5.5}), "max_tokens")


# -- 405, and every status a route answers with is documented ----------------------------------

@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/chat/completions", "POST"),
    ("PUT", "/v1/embeddings", "POST"),
    ("POST", "/healthz", "GET"),
    ("POST", "/metrics", "GET"),
    ("POST", "/v1/models/chat", "GET"),
    ("DELETE", "/admin/keys", "GET, POST"),
    ("PUT", "/admin/teams/red", "DELETE, GET, PATCH"),
])
def test_a_wrong_method_is_a_405_with_allow(server: GatewayServer, method: str, path: str,
                                            allow: str) -> None:
    r = httpx.request(method, server.url + path, headers=AUTH, timeout=30)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_an_unknown_path_is_a_404_without_allow(server: GatewayServer) -> None:
    r = httpx.get(server.url + "/v1/nothing", headers=AUTH, timeout=30)
    assert r.status_code == 404 and "allow" not in r.headers


def test_metrics_without_a_key_is_a_documented_401(server: GatewayServer) -> None:
    r = httpx.get(server.url + "/metrics", timeout=30)
    assert r.status_code == 401 and r.json()["error"]["type"]
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op.get("security"):
                assert "401" in op["responses"], f"{method.upper()} {path}"
    assert "401" in doc["paths"]["/metrics"]["get"]["responses"]
