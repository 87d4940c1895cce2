"""Helpers for routing tests: configs built in code, calls, a clock the test moves."""

from __future__ import annotations

from typing import Any

from gatewise.config.loader import ResolvedConfig, parse_config, resolve_config
from gatewise.pipeline.core import Call
from gatewise.providers.deployment import Deployment
from gatewise.types.validation import chat_request_from_dict


def resolved(models: dict[str, list[dict[str, Any]]], **router: Any) -> ResolvedConfig:
    cfg, warnings = parse_config({"models": models, "router": router})
    return resolve_config(cfg, None, {}, warnings)


def fakes(*ids: str, **extra: Any) -> list[dict[str, Any]]:
    """Deployments `fake/<id>` with ids `<id>` (the fake echoes unless the id says otherwise)."""
    return [{"model": f"fake/{i}", "id": i, **extra} for i in ids]


def chat(content: Any = "hi", model: str = "m", headers: dict[str, str] | None = None,
         **extra: Any) -> Call:
    req = chat_request_from_dict({"model": model, "messages": [{"role": "user", "content": content}],
                                  **extra})
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Call("chat", req, request_headers=raw)


def ids(deps: list[Deployment]) -> list[str]:
    return [d.id for d in deps]


class Clock:
    """`time.monotonic` stand-in: starts at 1000 s and moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
