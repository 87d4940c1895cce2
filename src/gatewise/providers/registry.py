"""Which code implements each wire format, by import path, so nothing loads until it is used.

Adding a wire format is one line here (plus its package); third-party packages can add more
through the `gatewise.providers` entry-point group (`name = "pkg.module:Factory"`).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from gatewise.errors import ConfigError

# Pure adapters run over the shared HTTP transport.
WIRE_ADAPTERS: dict[str, str] = {
    "openai": "gatewise.providers.openai.adapter:OpenAIAdapter",
    "anthropic": "gatewise.providers.anthropic.adapter:AnthropicAdapter",
    "gemini": "gatewise.providers.gemini.adapter:GeminiAdapter",
    "ollama": "gatewise.providers.ollama.adapter:OllamaAdapter",
}

# Engines that run in this process behind the ProviderClient protocol.
IN_PROCESS: dict[str, str] = {
    "llamacpp": "gatewise.providers.llamacpp.provider:LlamaCppProvider",
    "litellm": "gatewise.providers.litellm.provider:LiteLLMProvider",
    "fake": "gatewise.testing.fake:FakeProvider",
}


def load_object(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def plugin_specs() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="gatewise.providers")}


def resolve(wire: str) -> tuple[str, str]:
    """('adapter' | 'in_process', import spec) for a wire name, or a ConfigError."""
    if wire in WIRE_ADAPTERS:
        return "adapter", WIRE_ADAPTERS[wire]
    if wire in IN_PROCESS:
        return "in_process", IN_PROCESS[wire]
    plugins = plugin_specs()
    if wire in plugins:
        return "in_process", plugins[wire]
    raise ConfigError(f"no provider implements wire format '{wire}'")
