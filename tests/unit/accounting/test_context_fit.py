"""`fit_context`: a caller who asks gets the oldest history trimmed to the deployment's context
window (reserving `max_tokens` for the answer); a caller who does not ask is sent everything;
when even the system prompt and the last user message do not fit, a 400 names `messages`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import InvalidRequestError

SYSTEM = {"role": "system", "content": "You are terse."}


def _gateway(tmp_path: Path, window: int) -> Gateway:
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo", "prices": {"context_window": window}}]},
        "storage": {"state_dir": str(tmp_path)}})
    return Gateway(resolve_config(cfg, None, {}, w))


def _history(turns: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [SYSTEM]
    for i in range(turns):
        out.append({"role": "user", "content": f"question {i} " + "word " * 40})
        out.append({"role": "assistant", "content": f"answer {i} " + "word " * 40})
    out.append({"role": "user", "content": "and finally this"})
    return out


async def test_history_is_trimmed_only_when_the_caller_asks(tmp_path: Path) -> None:
    async with _gateway(tmp_path, window=400) as gw:
        full = await gw.chat(model="m", messages=_history(10), max_tokens=50)
        fitted = await gw.chat(model="m", messages=_history(10), max_tokens=50, fit_context=True)
    assert full.usage is not None and fitted.usage is not None
    # fake/echo bills one token per word of what it was sent.
    assert full.usage.prompt_tokens > 800
    assert fitted.usage.prompt_tokens < full.usage.prompt_tokens / 2
    assert fitted.content == "Hello! You said: and finally this"


async def test_metadata_asks_for_fitting_over_http_too(tmp_path: Path) -> None:
    async with _gateway(tmp_path, window=400) as gw:
        r = await gw.chat(model="m", messages=_history(10), max_tokens=50,
                          metadata={"fit_context": "true"})
    assert r.usage is not None and r.usage.prompt_tokens < 400


async def test_a_prompt_that_cannot_fit_is_refused_naming_messages(tmp_path: Path) -> None:
    async with _gateway(tmp_path, window=60) as gw:
        with pytest.raises(InvalidRequestError) as info:
            await gw.chat(model="m", max_tokens=50, fit_context=True, messages=[
                SYSTEM, {"role": "user", "content": "word " * 200}])
    assert info.value.code == "context_length_exceeded" and info.value.param == "messages"
