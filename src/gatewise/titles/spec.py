"""What a title request may say, checked once at the edge (HTTP body or library keywords).

The rules are the contract's (`/v1/titles`): a description of 1 to 8,000 characters once
surrounding whitespace is trimmed, without NUL bytes; a style (`concise` | `detailed`); a
maximum length of 10 to 200 characters; an optional category from a fixed list; up to 10
example titles of 1 to 200 characters. Both front ends go through `decode_title_request` (the
library encodes its keywords first), so they refuse exactly the same inputs with the same 400
whose `param` names the field, and nothing is reserved, recorded or cached for a refusal.

The type annotations are also what the OpenAPI document says (`server/openapi_titles.py`
generates it from `TitleRequest`), so the schema and the checks cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.types.requests import ModelName
from gatewise.types.validation import decode_typed

Style = Literal["concise", "detailed"]
Category = Literal["feature", "bug", "improvement", "task", "research", "infrastructure"]
STYLES: tuple[str, ...] = ("concise", "detailed")
CATEGORIES: tuple[str, ...] = ("feature", "bug", "improvement", "task", "research",
                               "infrastructure")
MAX_DESCRIPTION = 8000
MIN_LENGTH, MAX_LENGTH, DEFAULT_LENGTH = 10, 200, 80
MAX_EXAMPLES, MAX_EXAMPLE_CHARS = 10, 200
# Trimmed: 1..8000 characters, the first and last not whitespace; no NUL anywhere. The
# whitespace is spelled out as exactly what `str.isspace` (so `str.strip()`) removes: `\s`
# differs between Python and the ECMA regexes JSON Schema clients use (U+0085, U+001C-U+001F),
# and the document must accept only what the server does.
_WS = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
DESCRIPTION_PATTERN = (rf"^[{_WS}]*[^{_WS}\x00](?:[^\x00]{{0,{MAX_DESCRIPTION - 2}}}"
                       rf"[^{_WS}\x00])?[{_WS}]*$")
EXAMPLE_PATTERN = rf"^[^\x00]*[^{_WS}\x00][^\x00]*$"  # some text, no NUL

Description = Annotated[str, msgspec.Meta(
    pattern=DESCRIPTION_PATTERN,
    description="What the epic is about: 1 to 8000 characters once surrounding whitespace is "
                "trimmed, no NUL bytes")]
ExampleTitle = Annotated[str, msgspec.Meta(
    min_length=1, max_length=MAX_EXAMPLE_CHARS, pattern=EXAMPLE_PATTERN,
    description="A title the team considers good (few-shot guidance)")]
MaxLength = Annotated[int, msgspec.Meta(
    ge=MIN_LENGTH, le=MAX_LENGTH, description="The longest title wanted, in characters")]


class TitleRequest(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """The body of `POST /v1/titles` (and the library's keywords)."""

    description: Description
    style: Style = "concise"
    max_length: MaxLength = DEFAULT_LENGTH
    category: Category | None = None
    examples: Annotated[list[ExampleTitle], msgspec.Meta(max_length=MAX_EXAMPLES)] | None = None
    model: ModelName | None = None
    stream: bool = False
    user: Annotated[str, msgspec.Meta(max_length=256)] | None = None

    @property
    def text(self) -> str:
        """The description as the model sees it: trimmed."""
        return self.description.strip()


_decoder = msgspec.json.Decoder(TitleRequest)
# A clearer sentence than msgspec's (which quotes the regular expression) per field.
_MESSAGES = {
    "description": f"description must be 1 to {MAX_DESCRIPTION} characters (surrounding "
                   "whitespace does not count) without NUL bytes",
    "style": f"style must be one of {', '.join(STYLES)}",
    "max_length": f"max_length must be an integer from {MIN_LENGTH} to {MAX_LENGTH}",
    "category": f"category must be one of {', '.join(CATEGORIES)}",
    "examples": f"examples must be a list of at most {MAX_EXAMPLES} titles, each 1 to "
                f"{MAX_EXAMPLE_CHARS} characters of text without NUL bytes",
}
_INDEX = re.compile(r"\[\d+\]$")


def decode_title_request(body: bytes, *, max_depth: int) -> TitleRequest:
    """`body` as a `TitleRequest`, or an `InvalidRequestError` (400) naming the field."""
    try:
        return decode_typed(_decoder, TitleRequest, body, "title request", max_depth=max_depth)
    except InvalidRequestError as exc:
        field = _INDEX.sub("", exc.param or "")
        if field in _MESSAGES and exc.code != "nesting_too_deep":
            raise InvalidRequestError(_MESSAGES[field], param=exc.param) from None
        raise


def title_request_from(fields: dict[str, Any], *, max_depth: int) -> TitleRequest:
    """The library's keywords (None meaning "the default") through the same checks."""
    given = {k: v for k, v in fields.items() if v is not None}
    try:
        body = msgspec.json.encode(given)
    except (TypeError, msgspec.EncodeError):
        bad = next((k for k, v in given.items()
                    if not isinstance(v, str | int | float | bool | list | tuple)), None)
        raise InvalidRequestError(_MESSAGES.get(bad or "", "a value is not JSON-encodable"),
                                  param=bad) from None
    return decode_title_request(body, max_depth=max_depth)
