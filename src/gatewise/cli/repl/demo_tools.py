"""Tools the example pipeline (`examples/repl/pipeline.yaml`) lets its tool step call: small,
deterministic and harmless, so the timeline shows a real tool call without any setup."""

from __future__ import annotations

import datetime as dt


def current_time(utc_offset_hours: int = 0) -> str:
    """The current time at a UTC offset (hours, -12..14), ISO 8601."""
    hours = max(-12, min(14, int(utc_offset_hours)))
    tz = dt.timezone(dt.timedelta(hours=hours))
    return dt.datetime.now(tz).replace(microsecond=0).isoformat()


def word_count(text: str) -> dict[str, int]:
    """Words and characters in `text`."""
    return {"words": len(text.split()), "characters": len(text)}
