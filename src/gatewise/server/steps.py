"""A call's live steps over HTTP: the caller's `x-gatewise-steps: 1` header.

A streamed chat completion then interleaves, in order of occurrence, frames

    event: gatewise.step
    data: {"step": "<name>", "t_ms": 1.23, ...data}

with its `data: {chat.completion.chunk}` frames: steps before the first chunk (route, cache,
attempts, retries) are written as they happen, `done` right before `data: [DONE]`, an `error`
step before the error frame of a stream that failed. A non-streaming completion carries the
same steps as a top-level `"gatewise_steps": [...]` list. What the steps are and what they
hold is `gatewise.pipeline.steps`'s to say; this module only frames them. Without the header
nothing here runs and the response is byte for byte what it was.

Only the caller's own call is reported: the listener is installed on that call alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from gatewise.server.http import Scope, header

HEADER = b"x-gatewise-steps"
_encode = msgspec.json.Encoder(enc_hook=str).encode
_EVENT = b"event: gatewise.step\ndata: "


def wants_steps(scope: Scope) -> bool:
    """The caller asked for its call's steps (`x-gatewise-steps: 1`)."""
    value = header(scope, HEADER)
    return value is not None and value.strip().lower() in (b"1", b"true")


def step_payload(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"step": name, **data}


class StepFrames:
    """A call's listener that keeps its steps as SSE frames until the route writes them;
    `wake` is set whenever one arrives (the route waits on it before the first chunk)."""

    __slots__ = ("pending", "wake")

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.wake = asyncio.Event()

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        self.pending.append(_EVENT + _encode(step_payload(name, data)) + b"\n\n")
        self.wake.set()

    def take(self) -> bytes:
        out = b"".join(self.pending)
        self.pending.clear()
        return out


class StepList:
    """A non-streaming call's listener: the steps, for the response's `gatewise_steps`."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        self.steps.append(step_payload(name, data))

    def attach(self, body: bytes) -> bytes:
        """`body` (a JSON object) with the steps added as its last field."""
        assert body.endswith(b"}")
        return body[:-1] + b',"gatewise_steps":' + _encode(self.steps) + b"}"
