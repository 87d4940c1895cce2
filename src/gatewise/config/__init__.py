"""Typed configuration: schema, secret references, LiteLLM compatibility and the loader."""

from gatewise.config.loader import Deployment, ResolvedConfig, load_config, parse_config
from gatewise.config.schema import Config, DeploymentConfig, LocalModelConfig, ServerConfig

__all__ = [
    "Config",
    "Deployment",
    "DeploymentConfig",
    "LocalModelConfig",
    "ResolvedConfig",
    "ServerConfig",
    "load_config",
    "parse_config",
]
