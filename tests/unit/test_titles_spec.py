"""The title request's rules (`gatewise.titles.spec`), the same for HTTP and the library: every
bad field is a 400 naming it, and the trimmed description is what counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gatewise.errors import InvalidRequestError
from gatewise.titles.spec import decode_title_request, title_request_from

DEPTH = 32


def _decode(**body: Any) -> Any:
    return decode_title_request(json.dumps(body).encode(), max_depth=DEPTH)


def test_defaults_and_the_trimmed_description() -> None:
    req = _decode(description="  Let admins sign in with SSO  \n")
    assert (req.style, req.max_length, req.category, req.examples, req.stream) == (
        "concise", 80, None, None, False)
    assert req.text == "Let admins sign in with SSO"


def test_every_accepted_field() -> None:
    req = _decode(description="d", style="detailed", max_length=10.0, category="bug",
                  examples=["Fix login loop"], model="m", stream=True, user="u-1")
    assert (req.style, req.max_length, req.category, req.examples, req.model, req.stream,
            req.user) == ("detailed", 10, "bug", ["Fix login loop"], "m", True, "u-1")


def test_a_description_of_8000_characters_counts_without_its_surrounding_whitespace() -> None:
    assert _decode(description="  " + "x" * 8000 + "\n\n").text == "x" * 8000
    assert _decode(description="a" + " " * 7998 + "b").text.endswith("b")


@pytest.mark.parametrize(("body", "param"), [
    ({}, "description"),
    ({"description": ""}, "description"),
    ({"description": " \n\t "}, "description"),
    ({"description": "x" * 8001}, "description"),
    ({"description": "nul\x00byte"}, "description"),
    ({"description": 5}, "description"),
    ({"description": "d", "style": "verbose"}, "style"),
    ({"description": "d", "max_length": 9}, "max_length"),
    ({"description": "d", "max_length": 201}, "max_length"),
    ({"description": "d", "max_length": 50.5}, "max_length"),
    ({"description": "d", "max_length": "80"}, "max_length"),
    ({"description": "d", "category": "epic"}, "category"),
    ({"description": "d", "examples": ["ok"] * 11}, "examples"),
    ({"description": "d", "examples": [""]}, "examples[0]"),
    ({"description": "d", "examples": ["ok", "  "]}, "examples[1]"),
    ({"description": "d", "examples": ["x" * 201]}, "examples[0]"),
    ({"description": "d", "examples": "one title"}, "examples"),
    ({"description": "d", "model": ""}, "model"),
    ({"description": "d", "stream": "yes"}, "stream"),
    ({"description": "d", "colour": "red"}, "colour"),
])
def test_a_bad_field_is_a_400_naming_it(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        _decode(**body)
    assert err.value.status == 400
    assert err.value.param == param
    assert err.value.error_type == "invalid_request_error"


def test_the_message_says_what_is_allowed_not_a_regular_expression() -> None:
    with pytest.raises(InvalidRequestError) as err:
        _decode(description="   ")
    assert err.value.message.startswith("description must be 1 to 8000 characters")
    with pytest.raises(InvalidRequestError) as err:
        _decode(description="d", category="epic")
    assert "feature, bug, improvement, task, research, infrastructure" in err.value.message


def test_not_json_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as err:
        decode_title_request(b"{not json", max_depth=DEPTH)
    assert err.value.code == "invalid_json"


def test_library_keywords_go_through_the_same_checks() -> None:
    req = title_request_from({"description": "d", "style": None, "max_length": 30,
                              "examples": ("A", "B")}, max_depth=DEPTH)
    assert (req.style, req.max_length, req.examples) == ("concise", 30, ["A", "B"])
    with pytest.raises(InvalidRequestError) as err:
        title_request_from({"description": "d", "max_length": 500}, max_depth=DEPTH)
    assert err.value.param == "max_length"
    with pytest.raises(InvalidRequestError) as err:
        title_request_from({"description": object()}, max_depth=DEPTH)
    assert err.value.param == "description"
