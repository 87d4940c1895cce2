"""The nesting-depth check on raw bytes: exact for JSON, blind to brackets inside strings,
linear, and the reason no parser or walker after the edge can recurse too deep."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from gatewise.errors import InvalidRequestError
from gatewise.types.depth import deep_json_path, json_too_deep, object_too_deep
from gatewise.types.validation import (
    chat_request_from_dict,
    check_depth,
    decode_chat_request,
    embedding_request_from_dict,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_TRICKY = ["[", "]]", "{", "}", '"', "\\", '\\"', "\\\\", '"[', "[\\", "", "é[", "\n]"]


def _random_doc(rnd: random.Random, depth: int, budget: list[int]) -> Any:
    """A random document at most `depth` deep, of at most `budget[0]` containers."""
    if depth == 0 or budget[0] <= 0 or rnd.random() < 0.1:
        return rnd.choice([*_TRICKY, 1, 2.5, None, True])
    budget[0] -= 1
    children = [_random_doc(rnd, depth - 1, budget) for _ in range(rnd.randint(0, 3))]
    if rnd.random() < 0.5:
        return children
    return {rnd.choice(_TRICKY) + str(i): c for i, c in enumerate(children)}


def test_the_byte_check_agrees_with_the_real_depth_on_random_documents() -> None:
    rnd = random.Random(9)
    for _ in range(1500):
        doc = _random_doc(rnd, rnd.randint(1, 40), [60])
        body = json.dumps(doc, ensure_ascii=rnd.random() < 0.5).encode()
        depth = _depth(doc)
        for limit in (1, 2, 5, 8, 9, 13, 30):
            assert json_too_deep(body, limit) is (depth > limit), (limit, depth, body[:200])
            assert object_too_deep(doc, limit) is (depth > limit)


@pytest.mark.parametrize("opening", [b"[", b"{\"k\":"])
def test_the_limit_is_exact(opening: bytes) -> None:
    closing = b"]" if opening == b"[" else b"}"
    for limit in (8, 64, 128):
        at = opening * limit + b"1" + closing * limit
        over = opening * (limit + 1) + b"1" + closing * (limit + 1)
        assert not json_too_deep(at, limit) and json_too_deep(over, limit)


def test_brackets_and_escapes_inside_strings_do_not_count() -> None:
    text = '\\"' + "[" * 300 + "{" * 300 + "\\\\"
    body = json.dumps({"a": [text, {"b": text}], "c": "]" * 300}).encode()
    assert not json_too_deep(body, 3)
    assert json_too_deep(body, 2)


def test_whatever_the_bytes_the_check_answers_and_stops() -> None:
    rnd = random.Random(3)
    for _ in range(500):
        junk = bytes(rnd.choice(b'[]{}"\\ ab,:') for _ in range(rnd.randint(0, 300)))
        assert json_too_deep(junk, 8) in (True, False)
        deep_json_path(junk, 8)  # never raises


def test_a_megabyte_body_is_checked_in_milliseconds() -> None:
    chat = json.dumps({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "a [b] {c} \"d\" " * 4}]}
        for _ in range(8000)]}).encode()
    assert len(chat) > 1_000_000
    started = time.perf_counter()
    assert not json_too_deep(chat, 64)
    assert time.perf_counter() - started < 0.5  # ~2-5 ms here; generous for a busy machine
    chains = b"[" + b",".join([b"[" * 60 + b"]" * 60] * 8000) + b"]"  # the slowest shape
    started = time.perf_counter()
    assert not json_too_deep(chains, 64)
    assert time.perf_counter() - started < 1.0


def test_the_error_names_where_the_body_goes_too_deep() -> None:
    body = (b'{"model":"m","tools":[{"type":"function","function":{"name":"t","parameters":'
            + b'{"properties":' * 100 + b"{}" + b"}" * 100 + b"}}]}")
    assert deep_json_path(body, 64) == "tools[0].function.parameters.properties.properties"
    assert deep_json_path(b'{"a":[1,[2],[' + b"[" * 70 + b"]" * 71 + b"]}", 64) == "a[2][0][0][0][0]"
    assert deep_json_path(b"[" * 100 + b"]" * 100, 64) is None  # not an object: no field
    with pytest.raises(InvalidRequestError) as info:
        check_depth(b'{"prediction":{"x":' + b"[" * 100 + b"]" * 100 + b"}}", 64)
    assert info.value.param == "prediction.x[0][0][0][0]"
    assert info.value.code == "nesting_too_deep" and info.value.status == 400


@pytest.mark.parametrize("body", [
    b'{"model":"m","messages":[' + b"[" * 100_000,            # never closed
    b'{"model":"m","messages":[],"x":"' + b"[" * 5_000,        # a string never closed
    b'{"model":"m","prediction":' + b"[" * 3_000 + b"\\" + b"]" * 3_000 + b"}",
])
def test_bodies_that_are_not_json_are_a_400_however_deep(body: bytes) -> None:
    with pytest.raises(InvalidRequestError) as info:
        decode_chat_request(body)
    assert info.value.status == 400


def test_the_library_entry_refuses_deep_values_without_recursing() -> None:
    deep: Any = {}
    for _ in range(5_000):
        deep = {"a": deep}
    with pytest.raises(InvalidRequestError) as info:
        chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                "prediction": deep})
    assert info.value.code == "nesting_too_deep" and info.value.param == "prediction"
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(InvalidRequestError):
        embedding_request_from_dict({"model": "e", "input": cycle})
