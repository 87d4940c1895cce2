"""The exact cache's key covers everything that changes the answer, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.cache.key import cache_key, scope_of
from gatewise.pipeline.core import Identity
from gatewise.types.validation import decode_chat_request

BASE: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                        "temperature": 0}
TEAM = Identity(team="red", key_id="k1")


def key_of(body: bytes | dict[str, Any], identity: Identity = TEAM, alias: str = "m",
           deployments: tuple[str, ...] = ("d1",), global_scope: bool = False) -> str:
    import json

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return cache_key(scope_of(identity, global_scope=global_scope), alias, deployments,
                     decode_chat_request(raw))


def test_key_order_and_whitespace_in_the_json_never_split_an_entry() -> None:
    a = (b'{"model":"m","temperature":0,"messages":[{"role":"user","content":"hi"}],'
         b'"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":'
         b'{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}}}}')
    b = (b'{ "messages" : [ { "content" : "hi", "role" : "user" } ],\n  "response_format": '
         b'{"json_schema": {"schema": {"properties": {"b": {"type": "integer"}, "a": '
         b'{"type": "string"}}, "type": "object"}, "name": "x"}, "type": "json_schema"},'
         b'\n "temperature": 0.0, "model": "m" }')
    assert key_of(a) == key_of(b)


@pytest.mark.parametrize("change", [
    {"messages": [{"role": "user", "content": "hi!"}]},
    {"messages": [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}]},
    {"temperature": 0.5, "seed": 1},
    {"seed": 7},
    {"top_p": 0.5},
    {"max_tokens": 10},
    {"max_completion_tokens": 10},
    {"stop": ["\n"]},
    {"n": 2},
    {"frequency_penalty": 0.5},
    {"presence_penalty": 0.5},
    {"logit_bias": {"50256": -100}},
    {"logprobs": True},
    {"reasoning_effort": "low"},
    {"response_format": {"type": "json_object"}},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
     "tool_choice": "required"},
    {"parallel_tool_calls": False},
])
def test_every_generation_parameter_changes_the_key(change: dict[str, Any]) -> None:
    assert key_of({**BASE, **change}) != key_of(BASE)


@pytest.mark.parametrize("change", [
    {"user": "someone"}, {"metadata": {"request_id": "r-123", "request_type": "title"}},
    {"stream": True}, {"stream": True, "stream_options": {"include_usage": True}},
    {"model": "other-name"}, {"store": True}, {"safety_identifier": "s"},
])
def test_per_request_ids_and_labels_do_not_change_the_key(change: dict[str, Any]) -> None:
    assert key_of({**BASE, **change}) == key_of(BASE)


def test_the_alias_and_its_deployment_set_are_in_the_key() -> None:
    assert key_of(BASE, alias="a") != key_of(BASE, alias="b")
    assert key_of(BASE, deployments=("d1",)) != key_of(BASE, deployments=("d1", "d2"))


def test_tenant_scope_is_the_team_else_the_key_else_the_user() -> None:
    assert key_of(BASE, Identity(team="red", key_id="k1")) == \
        key_of(BASE, Identity(team="red", key_id="k2"))
    assert key_of(BASE, Identity(team="red")) != key_of(BASE, Identity(team="blue"))
    assert key_of(BASE, Identity(key_id="k1")) != key_of(BASE, Identity(key_id="k2"))
    assert key_of(BASE, Identity(user="u1")) != key_of(BASE, Identity(user="u2"))
    assert key_of(BASE, Identity(tenant="t1", team="red")) != \
        key_of(BASE, Identity(tenant="t2", team="red"))
    assert scope_of(Identity(team="red")) == "default/team:red"


def test_global_scope_is_shared_only_when_chosen() -> None:
    red, blue = Identity(team="red"), Identity(team="blue")
    assert key_of(BASE, red, global_scope=True) == key_of(BASE, blue, global_scope=True)
    assert key_of(BASE, red, global_scope=True) != key_of(BASE, red)


def test_the_key_never_holds_the_secret_or_the_text() -> None:
    key = key_of({**BASE, "messages": [{"role": "user", "content": "sk-secret-value"}]},
                 Identity(key_id="sk-gw-abc"))
    assert "secret" not in key and "sk-gw" not in key
    assert key.startswith("cache:v1:") and len(key) == len("cache:v1:") + 16 + 1 + 16 + 1 + 64


def test_a_key_starts_with_its_scope_then_its_alias() -> None:
    from gatewise.cache.key import alias_prefix, scope_of, scope_prefix

    red = Identity(team="red")
    key = key_of(BASE, red)
    assert key.startswith(alias_prefix(scope_of(red), "m"))
    assert key.startswith(scope_prefix(scope_of(red)))
    assert not key.startswith(scope_prefix(scope_of(Identity(team="blue"))))
