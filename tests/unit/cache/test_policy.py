"""What the exact cache may store, and for how long."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gatewise.cache.policy import (
    CacheControl,
    CachePolicy,
    control_from_headers,
    control_from_options,
)
from gatewise.config.schema import CacheConfig
from gatewise.errors import InvalidRequestError
from gatewise.types.responses import ChatCompletion
from gatewise.types.validation import chat_request_from_dict


def policy(**cfg: Any) -> CachePolicy:
    return CachePolicy(msgspec.convert({"enabled": True, **cfg}, CacheConfig))


def req(**kw: Any) -> Any:
    return chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                   **kw})


def answer(finish: str = "stop", tools: bool = False) -> ChatCompletion:
    msg: dict[str, Any] = {"content": None if tools else "ok"}
    if tools:
        msg["tool_calls"] = [{"id": "c", "type": "function",
                              "function": {"name": "f", "arguments": "{}"}}]
    return msgspec.convert({"choices": [{"message": msg, "finish_reason": finish}]},
                           ChatCompletion)


@pytest.mark.parametrize(("params", "cached"), [
    ({"temperature": 0}, True),
    ({"temperature": 0.7, "seed": 3}, True),
    ({"seed": 3}, True),
    ({"temperature": 0.7}, False),
    ({}, False),  # the provider's default temperature samples
])
def test_sampled_requests_are_not_cached_unless_the_alias_opts_in(
        params: dict[str, Any], cached: bool) -> None:
    p = policy()
    assert (p.request_bypass(p.for_alias("m"), req(**params)) is None) is cached
    opted = policy(aliases={"m": {"cache_nondeterministic": True}})
    assert opted.request_bypass(opted.for_alias("m"), req(**params)) is None


def test_tool_call_answers_only_when_opted_in_and_never_filtered_ones() -> None:
    p = policy(aliases={"tools": {"cache_tools": True}})
    assert p.answer_bypass(p.for_alias("m"), answer()) is None
    assert p.answer_bypass(p.for_alias("m"), answer("length")) is None
    assert p.answer_bypass(p.for_alias("m"), answer("tool_calls", tools=True)) == "tool_calls"
    assert p.answer_bypass(p.for_alias("tools"), answer("tool_calls", tools=True)) is None
    assert p.answer_bypass(p.for_alias("m"), answer("content_filter")) == "finish_reason"


def test_ttl_request_beats_request_type_beats_alias_beats_default() -> None:
    p = policy(default_ttl_s=100, request_type_ttl={"title": 30},
               aliases={"long": {"ttl_s": 1000}})
    assert p.ttl(p.for_alias("m"), req(), CacheControl()) == 100
    assert p.ttl(p.for_alias("long"), req(), CacheControl()) == 1000
    titled = req(metadata={"request_type": "title"})
    assert p.ttl(p.for_alias("long"), titled, CacheControl()) == 30
    assert p.ttl(p.for_alias("long"), titled, CacheControl(ttl_s=5)) == 5


def test_aliases_inherit_the_defaults_and_may_turn_the_cache_off() -> None:
    p = policy(scope="global", aliases={"private": {"scope": "tenant"}, "off": {"enabled": False}})
    assert p.for_alias("m").global_scope and not p.for_alias("private").global_scope
    assert not p.for_alias("off").enabled
    only = CachePolicy(msgspec.convert({"aliases": {"a": {"enabled": True}}}, CacheConfig))
    assert only.any_enabled and only.for_alias("a").enabled and not only.for_alias("b").enabled
    assert not CachePolicy(CacheConfig()).any_enabled  # off by default


def test_request_controls_from_headers_and_library_options() -> None:
    assert control_from_headers([]) == CacheControl()
    assert control_from_headers([(b"x-gatewise-cache", b"No-Store")]).mode == "no-store"
    assert control_from_headers([(b"x-gatewise-cache", b"only-if-cached"),
                                 (b"x-gatewise-cache-ttl", b"60")]) == \
        CacheControl("only-if-cached", 60.0)
    assert control_from_options({"mode": "no-cache", "ttl_s": 5}) == CacheControl("no-cache", 5)
    for bad in ([(b"x-gatewise-cache", b"sometimes")], [(b"x-gatewise-cache-ttl", b"-1")],
                [(b"x-gatewise-cache-ttl", b"soon")], [(b"x-gatewise-cache-ttl", b"nan")]):
        with pytest.raises(InvalidRequestError):
            control_from_headers(bad)
    for opts in ({"mode": "maybe"}, {"ttl": 5}, {"ttl_s": 0}):
        with pytest.raises(InvalidRequestError):
            control_from_options(opts)
