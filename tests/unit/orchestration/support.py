"""Gateways for orchestration tests: each model answers what the test says, after the delay
the test says, through the shipped `ScriptedProvider`, which records every call and every
cancellation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gatewise import Gateway
from gatewise.config.loader import ResolvedConfig, parse_config, resolve_config
from gatewise.errors import ProviderServerError
from gatewise.pipeline.core import Middleware
from gatewise.testing import Reply, ScriptedProvider, tool_call
from gatewise.testing.scripted import Script
from gatewise.types.messages import UserMessage, text_of
from gatewise.types.requests import ChatRequest

__all__ = ["Reply", "ScriptedProvider", "failing", "last_user_text", "resolved",
           "scripted_gateway", "tool_reply"]


def tool_reply(name: str, args: Any) -> Reply:
    return tool_call(name, args)


def failing(delay_s: float = 0.0) -> Reply:
    """A model that fails with a 500 (after `delay_s`)."""
    return Reply(error=ProviderServerError, delay_s=delay_s)


def last_user_text(req: ChatRequest) -> str:
    last = next(m for m in reversed(req.messages) if isinstance(m, UserMessage))
    return text_of(last.content)


def resolved(models: dict[str, Any], **extra: Any) -> ResolvedConfig:
    """Each alias → one `fake/<alias>` deployment unless given as a list of deployments."""
    spec = {alias: v if isinstance(v, list) else [{"model": f"fake/{v}"}]
            for alias, v in models.items()}
    cfg, warnings = parse_config({"models": spec, **extra})
    return resolve_config(cfg, None, {}, warnings)


def scripted_gateway(script: dict[str, Script], middlewares: Sequence[Middleware] = (),
                     **extra: Any) -> tuple[Gateway, ScriptedProvider]:
    """A gateway whose alias `x` is served by scripted model `x`."""
    gw = Gateway(resolved({m: m for m in script}, **extra), middlewares=middlewares, seed=7)
    provider = ScriptedProvider(script)
    gw.pool.register("fake", provider)
    return gw, provider
