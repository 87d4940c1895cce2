"""The epic title generator (seed 001): a description in; a title out, concise or detailed,
at most `max_length` characters, for a category, guided by example titles.

One feature, two front ends: `Gateway.titles` (`generate`, `agenerate`, `stream_generate`) and
`POST /v1/titles` (`server/routes/titles.py`), both through `spec.py`'s checks and `service.py`,
which runs the built-in prompt `title` (`prompt.py`) as a chat call through the whole chain,
then cleans the answer (`postprocess.py`).
"""

from __future__ import annotations

from gatewise.titles.postprocess import StreamCleaner, clean_title
from gatewise.titles.prompt import (
    PROMPT_NAME,
    TITLE_TEMPLATE,
    check_title_model,
    with_title_cache,
    with_title_prompt,
)
from gatewise.titles.service import Title, Titles, TitleStream
from gatewise.titles.spec import CATEGORIES, STYLES, TitleRequest, decode_title_request

__all__ = ["CATEGORIES", "PROMPT_NAME", "STYLES", "TITLE_TEMPLATE", "StreamCleaner", "Title",
           "TitleRequest", "TitleStream", "Titles", "check_title_model", "clean_title",
           "decode_title_request", "with_title_cache", "with_title_prompt"]
