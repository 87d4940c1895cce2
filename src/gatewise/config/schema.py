"""The typed configuration schema (`gatewise.yaml`).

Unknown keys and wrong types are errors, never ignored: a typo in a budget or a key reference
must not silently run with defaults. Secrets are references (`env:NAME`, `os.environ/NAME`,
`file:/path`), resolved in the loader's second phase, never stored in the schema objects' repr.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

_Positive = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
_Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class _Strict(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Prices(_Strict):
    """USD per million tokens; overrides the shipped price table for one deployment."""

    input: Annotated[float, msgspec.Meta(ge=0)] | None = None
    output: Annotated[float, msgspec.Meta(ge=0)] | None = None
    cached_input: Annotated[float, msgspec.Meta(ge=0)] | None = None


class DeploymentConfig(_Strict):
    model: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.\-]+/.+$")]
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    headers: dict[str, str] | None = None
    weight: _Positive = 1.0
    rpm: _PositiveInt | None = None
    tpm: _PositiveInt | None = None
    timeout: _Positive | None = None
    stream_timeout: _Positive | None = None
    connect_timeout: _Positive | None = None
    prices: Prices | None = None
    params: dict[str, Any] | None = None
    id: str | None = None


class LocalModelConfig(_Strict):
    """A GGUF model run in process: by file path, by file inside a package, or by chunks
    shipped across packages (joined once and checked against a pinned sha256)."""

    path: str | None = None
    package: str | None = None
    file: str | None = None
    parts: list[str] | None = None
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | None = None
    n_ctx: _PositiveInt | None = None
    n_threads: _PositiveInt | None = None
    n_batch: _PositiveInt | None = None
    chat_format: str | None = None


class ProviderDefaults(_Strict):
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    headers: dict[str, str] | None = None
    enabled: bool = True


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: _Port = 4000
    max_body_bytes: _PositiveInt = 8 * 1024 * 1024
    master_key: str | None = None
    warmup: bool = True


class Config(_Strict):
    models: dict[str, list[DeploymentConfig]] = msgspec.field(default_factory=dict)
    default_model: str | None = None
    local_models: dict[str, LocalModelConfig] = msgspec.field(default_factory=dict)
    providers: dict[str, ProviderDefaults] = msgspec.field(default_factory=dict)
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    # Allow `provider/model` in requests for providers whose keys are set, without an alias.
    allow_direct_models: bool = True
    model_cache_dir: str | None = None
