"""Secret references: the only way keys enter gatewise from config.

`env:NAME`, `os.environ/NAME` (LiteLLM's spelling) and `${NAME}` read an environment
variable; `file:/path` reads a file (Docker/Kubernetes secrets). Anything else is a literal,
accepted for LiteLLM compatibility. Resolution happens once at load, never per request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gatewise.errors import ConfigError


def resolve_secret(value: str | None, *, env: Mapping[str, str], file: str | None,
                   path: str) -> str | None:
    if value is None:
        return None
    name: str | None = None
    if value.startswith("env:"):
        name = value[4:]
    elif value.startswith("os.environ/"):
        name = value[len("os.environ/"):]
    elif value.startswith("${") and value.endswith("}"):
        name = value[2:-1]
    if name is not None:
        got = env.get(name)
        if not got:
            raise ConfigError(f"environment variable {name} is not set", file=file, path=path)
        return got
    if value.startswith("file:"):
        p = Path(value[5:]).expanduser()
        try:
            return p.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {p}: {exc.strerror}", file=file,
                              path=path) from None
    return value


def first_env(names: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    for n in names:
        v = env.get(n)
        if v:
            return v
    return None


def process_env() -> Mapping[str, str]:
    return os.environ
