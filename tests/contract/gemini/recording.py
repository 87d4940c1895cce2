"""Shared pieces of the recorded-body contract tests: the recordings, a replaying client and
the canonical requests they are driven with. No sockets anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from gatewise.providers.base import Target
from gatewise.providers.gemini.adapter import GeminiAdapter
from gatewise.providers.http import HttpProviderClient
from gatewise.transport.replay import Recorded, ReplayTransport
from gatewise.types.requests import ChatRequest
from gatewise.types.validation import chat_request_from_dict

RECORDED = Path(__file__).parent / "recorded"
BASE = "https://generativelanguage.googleapis.com"
SSE = {"content-type": "text/event-stream"}
SIG = "CiQBcsjafEYTMb8Ymnn3OBzkCl5FSdWnF5vmSqsTJdySgMYxhrUKZgFyyNp8C2zf/ELsm+GUHJ9BTtmcFaaZqzfz5+ug" \
      "bRiK4yg9z2qOUXlu8rOBVgP0HPhcJy5ZyOJRd7JOYgOwNAgXtAMMDzT6xJLO2zPcX7yN7KlJOyrJqcCLpORgl0ymtt6+iCBY"


def recorded(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def gemini_target(model: str = "gemini-2.5-flash", **kw: Any) -> Target:
    return Target(provider="gemini", wire="gemini", model=model, api_base=BASE,
                  api_key="AIzaSyD-test-key", auth="x-goog-api-key", **kw)


def replay(rec: Recorded) -> tuple[HttpProviderClient, ReplayTransport]:
    transport = ReplayTransport(rec)
    return HttpProviderClient(GeminiAdapter(), transport), transport


def chat_request(messages: list[dict[str, Any]] | None = None, **kw: Any) -> ChatRequest:
    return chat_request_from_dict(
        {"model": "x", "messages": messages or [{"role": "user", "content": "hi"}], **kw})


def sent_json(transport: ReplayTransport) -> dict[str, Any]:
    body = transport.requests[-1].body
    assert body is not None
    return json.loads(body)


def plain(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
