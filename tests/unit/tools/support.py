"""Gateways for tool tests: the default model `m` is the shipped `ScriptedProvider`, playing
each turn the test's script says (text or tool calls with raw argument strings, so malformed
JSON can be scripted too) and keeping every request it saw for assertions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.pipeline.core import Middleware
from gatewise.testing import Reply, ScriptedProvider, tool_call
from gatewise.testing.scripted import Script
from gatewise.types.responses import Usage


def call(name: str, args: Any) -> Reply:
    return tool_call(name, args)


def scripted_gateway(script: Script, middlewares: Sequence[Middleware] = ()
                     ) -> tuple[Gateway, ScriptedProvider]:
    """A gateway whose default model `m` (deployed as `fake/m`) is served by the script."""
    cfg, w = parse_config({"models": {"m": [{"model": "fake/m"}]}, "default_model": "m",
                           "router": {"retry": {"max_retries": 0}},
                           # accounting is not what these tests are about
                           "accounting": {"enabled": False}, "storage": {"database": "memory"}})
    gw = Gateway(resolve_config(cfg, None, {}, w), middlewares=middlewares)
    model = ScriptedProvider(script, usage=Usage(prompt_tokens=10, completion_tokens=3,
                                                 total_tokens=13))
    gw.pool.register("fake", model)
    return gw, model


def fake_tools_gateway(middlewares: Sequence[Middleware] = ()) -> Gateway:
    """The shipped FakeProvider's `fake/tools-forever`: always calls the first offered tool."""
    cfg, w = parse_config({"models": {"tools": [{"model": "fake/tools-forever"}]},
                           "default_model": "tools", "router": {"retry": {"max_retries": 0}},
                           # accounting is not what these tests are about
                           "accounting": {"enabled": False}, "storage": {"database": "memory"}})
    return Gateway(resolve_config(cfg, None, {}, w), middlewares=middlewares)


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, kind: str, action: str, *, request_id: str | None = None,
             tenant: str | None = None, key_id: str | None = None,
             detail: dict[str, Any] | None = None) -> None:
        self.events.append((kind, action, detail or {}))
