"""Typed configuration: schema, secret references, LiteLLM compatibility and the loader.

Names are loaded on first use: the schema sits below the providers while the loader sits
above them (it resolves config against provider presets), so importing `config.schema` must
not pull in the loader.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Config": "gatewise.config.schema",
    "DeploymentConfig": "gatewise.config.schema",
    "LocalModelConfig": "gatewise.config.schema",
    "ServerConfig": "gatewise.config.schema",
    "ResolvedConfig": "gatewise.config.loader",
    "load_config": "gatewise.config.loader",
    "parse_config": "gatewise.config.loader",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from gatewise.config.loader import ResolvedConfig as ResolvedConfig
    from gatewise.config.loader import load_config as load_config
    from gatewise.config.loader import parse_config as parse_config
    from gatewise.config.schema import Config as Config
    from gatewise.config.schema import DeploymentConfig as DeploymentConfig
    from gatewise.config.schema import LocalModelConfig as LocalModelConfig
    from gatewise.config.schema import ServerConfig as ServerConfig


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gatewise.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
