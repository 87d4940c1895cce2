"""Loads configuration in two phases: parse and check the schema, then resolve references.

Phase 1 turns YAML into typed objects (errors name the file, the key path and the problem).
Phase 2 resolves secrets and provider presets into ready `Target`s once, at start-up, so the
request path never reads the environment or a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml

from gatewise.config.litellm_compat import is_litellm_config, translate
from gatewise.config.network import build_network
from gatewise.config.schema import (
    Config,
    DeploymentConfig,
    LocalModelConfig,
    ProviderDefaults,
)
from gatewise.config.secrets import first_env, process_env, resolve_secret
from gatewise.errors import ConfigError
from gatewise.providers.base import Target
from gatewise.providers.deployment import Deployment
from gatewise.providers.presets import (
    IN_PROCESS_WIRES,
    PRESETS,
    Preset,
    direct_model_ok,
    find_preset,
    path_model_ok,
)
from gatewise.transport.base import Timeouts
from gatewise.transport.network import Network

DEFAULT_LOCAL_MODEL = "smollm2-135m"
_MSGSPEC_PATH = re.compile(r" - at `\$\.?(.*)`$")
_UNKNOWN = re.compile(r"unknown field `([^`]*)`")


@dataclass(slots=True)
class ResolvedConfig:
    config: Config
    file: str | None
    aliases: dict[str, list[Deployment]]
    default_model: str | None
    warnings: list[str] = field(default_factory=list)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    master_key: str | None = field(default=None, repr=False)
    # `router.redis_url` with its secret reference resolved (it may carry a password).
    redis_url: str | None = field(default=None, repr=False)
    # `storage.redis_url` (else `router.redis_url`), `storage.postgres_url` and
    # `security.encryption_key`, resolved; `state_dir` expanded to an absolute path.
    storage_redis_url: str | None = field(default=None, repr=False)
    postgres_url: str | None = field(default=None, repr=False)
    encryption_key: str | None = field(default=None, repr=False)
    state_dir: str = ""
    # Providers a request may name directly (`provider/model`), from `allow_direct_models`.
    direct_providers: frozenset[str] = frozenset()
    # `observability.tracing.headers` (sent with every OTLP export), secret references resolved.
    tracing_headers: dict[str, str] = field(default_factory=dict, repr=False)
    # Proxies (from HTTPS_PROXY/HTTP_PROXY/NO_PROXY) and per-origin TLS, for the transport.
    network: Network = field(default_factory=Network, repr=False)

    def direct(self, ref: str) -> Deployment | None:
        """A deployment for a `provider/model` reference that no alias names, if allowed.

        The caller wrote `ref`, so it decides nothing but the model: the provider must be one
        the operator allows, the model must pass the preset's character rule (no path, query,
        host or port tricks), and the address comes only from config, environment or the
        preset's default, never from the request. Anything else is None (a 404, not a call)."""
        provider, slash, model = ref.partition("/")
        found = find_preset(provider) if slash else None
        if found is None:
            return None
        name, preset = found
        if name not in self.direct_providers or not direct_model_ok(model, preset):
            return None
        dep = build_deployment(ref, DeploymentConfig(model=ref), self.config,
                               self.env, self.file, path="<request model>")
        if dep.problem is not None or dep.target.wire in IN_PROCESS_WIRES:
            return None
        return dep


def _schema_error(exc: msgspec.ValidationError, file: str | None, prefix: str = "") -> ConfigError:
    text = str(exc)
    m = _MSGSPEC_PATH.search(text)
    path = m.group(1) if m else ""
    if prefix:
        path = f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}" if path else prefix
    msg = _MSGSPEC_PATH.sub("", text)
    unknown = _UNKNOWN.search(msg)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        msg = f"unknown key '{unknown.group(1)}'"
    return ConfigError(msg, file=file, path=path or None)


def parse_config(data: Any, file: str | None = None,
                 env: Mapping[str, str] | None = None) -> tuple[Config, list[str]]:
    """Phase 1: plain data (from YAML) → typed `Config`, plus warnings for LiteLLM leftovers.
    `env` is what a LiteLLM file's environment-only settings read (default: the process's)."""
    warnings: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping", file=file)
    if is_litellm_config(data):
        data, warnings = translate(data, file, env)
    # msgspec reports mapping keys as `[...]`; check the keyed sections one key at a time so
    # errors name the alias or model that is wrong.
    for section, kind in (("models", list[DeploymentConfig]), ("local_models", LocalModelConfig),
                          ("providers", ProviderDefaults)):
        entries = data.get(section)
        if isinstance(entries, dict):
            for key, value in entries.items():
                try:
                    msgspec.convert(value, kind)
                except msgspec.ValidationError as exc:
                    raise _schema_error(exc, file, f"{section}.{key}") from None
    try:
        cfg = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise _schema_error(exc, file) from None
    return cfg, warnings


def read_config_file(path: str | os.PathLike[str], env: Mapping[str, str] | None = None,
                     ) -> tuple[Config, list[str], dict[str, str]]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(p)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", file=str(p), path=where) from None
    extra_env: dict[str, str] = {}
    if isinstance(data, dict) and isinstance(data.get("environment_variables"), dict):
        extra_env = {str(k): str(v) for k, v in data["environment_variables"].items()}
    cfg, warnings = parse_config(data, str(p), env)
    return cfg, warnings, extra_env


def default_config() -> Config:
    """The zero-config gateway: the embedded local model, answering as `local` and by name."""
    local = [DeploymentConfig(model=f"llamacpp/{DEFAULT_LOCAL_MODEL}")]
    return Config(models={"local": local, DEFAULT_LOCAL_MODEL: list(local)},
                  default_model="local")


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> ResolvedConfig:
    """Both phases. No path → the zero-config default (local model only, offline)."""
    base_env = process_env() if env is None else env
    if path is None:
        return resolve_config(default_config(), None, base_env, [])
    cfg, warnings, extra_env = read_config_file(path, base_env)
    merged_env: Mapping[str, str] = {**base_env, **extra_env} if extra_env else base_env
    return resolve_config(cfg, str(path), merged_env, warnings)


def resolve_config(cfg: Config, file: str | None, env: Mapping[str, str],
                   warnings: list[str]) -> ResolvedConfig:
    """Phase 2: secrets and presets → ready deployments."""
    aliases: dict[str, list[Deployment]] = {}
    for alias, deps in cfg.models.items():
        if not deps:
            raise ConfigError("an alias needs at least one deployment", file=file,
                              path=f"models.{alias}")
        out = []
        for i, dep in enumerate(deps):
            d = build_deployment(alias, dep, cfg, env, file, path=f"models.{alias}[{i}]")
            if d.problem:
                warnings.append(f"models.{alias}[{i}] ({dep.model}): {d.problem}")
            out.append(d)
        aliases[alias] = out
    for name in cfg.providers:
        if find_preset(name) is None:
            raise ConfigError(f"unknown provider '{name}'", file=file, path=f"providers.{name}")
    if cfg.default_model is not None and cfg.default_model not in aliases:
        raise ConfigError(f"names '{cfg.default_model}', which is not an alias in 'models'",
                          file=file, path="default_model")
    _check_alias_references(cfg, aliases, file)
    master_key = resolve_secret(cfg.server.master_key, env=env, file=file,
                                path="server.master_key")
    redis_url = resolve_secret(cfg.router.redis_url, env=env, file=file, path="router.redis_url")
    if cfg.router.breaker.enabled and cfg.router.breaker.store == "redis" and not redis_url:
        raise ConfigError("a breaker shared through Redis needs 'router.redis_url'", file=file,
                          path="router.breaker.store")
    st = cfg.storage
    storage_redis = resolve_secret(st.redis_url, env=env, file=file,
                                   path="storage.redis_url") or redis_url
    postgres_url = resolve_secret(st.postgres_url, env=env, file=file, path="storage.postgres_url")
    if st.database == "postgres" and not postgres_url:
        raise ConfigError("database 'postgres' needs 'storage.postgres_url'", file=file,
                          path="storage.database")
    if cfg.router.breaker.enabled and cfg.router.breaker.store == "postgres" \
            and st.database != "postgres":
        raise ConfigError("a breaker shared through PostgreSQL needs storage.database "
                          "'postgres'", file=file, path="router.breaker.store")
    if st.counters == "redis" and not storage_redis:
        raise ConfigError("counters on Redis need 'storage.redis_url'", file=file,
                          path="storage.counters")
    encryption_key = resolve_secret(cfg.security.encryption_key, env=env, file=file,
                                    path="security.encryption_key")
    if not encryption_key:
        for alias, resolved in aliases.items():
            for i, d in enumerate(resolved):
                if d.credential is not None:
                    raise ConfigError("'vault:' keys need 'security.encryption_key'", file=file,
                                      path=f"models.{alias}[{i}].api_key")
    state_dir = (st.state_dir or env.get("GATEWISE_STATE_DIR")
                 or os.environ.get("GATEWISE_STATE_DIR") or "~/.local/state/gatewise")
    tracing = cfg.observability.tracing
    tracing_headers = {k: resolve_secret(v, env=env, file=file,
                                         path=f"observability.tracing.headers.{k}") or ""
                       for k, v in tracing.headers.items()} if tracing.enabled else {}
    return ResolvedConfig(cfg, file, aliases, cfg.default_model, warnings, env, master_key,
                          redis_url, storage_redis, postgres_url, encryption_key,
                          str(Path(state_dir).expanduser().resolve()),
                          direct_providers=_direct_providers(cfg.allow_direct_models, file),
                          tracing_headers=tracing_headers,
                          network=build_network(cfg, aliases, env, file))


def _direct_providers(allow: bool | list[str], file: str | None) -> frozenset[str]:
    """`allow_direct_models` as provider names. `true` means the hosted providers that take a
    key (a deployment still needs its key configured to be used): a provider whose default
    address is on this host, or that is any server the operator points it at
    (`openai_compatible`), is an internal service as far as callers go, reachable by a
    request's model name only when the operator lists it."""
    if allow is True:
        return frozenset(name for name, p in PRESETS.items() if p.key_required
                         and not p.local_default and not p.in_process)
    if allow is False:
        return frozenset()
    names = set()
    for i, provider in enumerate(allow):
        found = find_preset(provider)
        if found is None:
            raise ConfigError(f"unknown provider '{provider}'", file=file,
                              path=f"allow_direct_models[{i}]")
        if found[1].in_process:
            raise ConfigError(f"'{provider}' runs in process: give its models an alias in "
                              "'models' instead", file=file, path=f"allow_direct_models[{i}]")
        names.add(found[0])
    return frozenset(names)


def _check_alias_references(cfg: Config, aliases: Mapping[str, object], file: str | None) -> None:
    """Every alias that routing or orchestration names must exist (or be an orchestration)."""
    known = set(aliases) | set(cfg.orchestrations)
    # `auto` (complexity routing) is a valid target for rules and steps once tiers are mapped.
    routable = known | {"auto"} if cfg.router.complexity else known

    def need(name: str, path: str, among: set[str] = known) -> None:
        if name not in among:
            raise ConfigError(f"names '{name}', which is not an alias in 'models'", file=file,
                              path=path)

    r = cfg.router
    for section in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        for alias, chain in getattr(r, section).items():
            need(alias, f"router.{section}.{alias}")
            for j, target in enumerate(chain):
                need(target, f"router.{section}.{alias}[{j}]")
    if r.rate_limit_fallback is not None:
        need(r.rate_limit_fallback, "router.rate_limit_fallback")
    for i, rule in enumerate(r.rules):
        need(rule.alias, f"router.rules[{i}].alias", routable)
    for tier, alias in (r.complexity or {}).items():
        need(alias, f"router.complexity.{tier}")
    for step, alias in r.steps.items():
        need(alias, f"router.steps.{step}", routable)
    for name, orch in cfg.orchestrations.items():
        if name in aliases:
            raise ConfigError("an orchestration cannot share its name with an alias", file=file,
                              path=f"orchestrations.{name}")
        for j, m in enumerate(orch.models):
            if m not in aliases:
                raise ConfigError(f"names '{m}', which is not an alias in 'models'", file=file,
                                  path=f"orchestrations.{name}.models[{j}]")
        if orch.judge is not None and orch.judge not in aliases:
            raise ConfigError(f"names '{orch.judge}', which is not an alias in 'models'",
                              file=file, path=f"orchestrations.{name}.judge")


def build_deployment(alias: str, dep: DeploymentConfig, cfg: Config, env: Mapping[str, str],
                     file: str | None, *, path: str) -> Deployment:
    provider, _, model = dep.model.partition("/")
    found = find_preset(provider)
    if found is None:
        raise ConfigError(
            f"unknown provider '{provider}' in '{dep.model}' (use 'litellm/{dep.model}' to "
            "reach it through LiteLLM)", file=file, path=f"{path}.model")
    name, preset = found
    if preset.model_in_path and not path_model_ok(model):
        raise ConfigError(f"'{model}' cannot be a {name} model: it goes into the URL path, so "
                          "it must be one segment of letters, digits and '._-'", file=file,
                          path=f"{path}.model")
    defaults = cfg.providers.get(name) or ProviderDefaults()
    problem: str | None = None
    if not defaults.enabled:
        problem = f"provider '{name}' is disabled in config"
    api_base = dep.api_base or defaults.api_base or first_env(preset.base_env, env) or preset.api_base
    if preset.base_without_scheme and api_base and "://" not in api_base:
        api_base = f"http://{api_base}"  # OLLAMA_HOST is often host:port
    key_ref = dep.api_key or defaults.api_key
    credential = key_ref[6:] if key_ref and key_ref.startswith("vault:") else None
    if credential is not None:
        if not credential:
            raise ConfigError("'vault:' needs a credential name", file=file, path=f"{path}.api_key")
        api_key = None
    elif key_ref:
        api_key = resolve_secret(key_ref, env=env, file=file, path=f"{path}.api_key")
    else:
        api_key = first_env(preset.key_env, env)
    if preset.key_required and not api_key and credential is None and problem is None:
        problem = f"no API key: set {preset.key_env[0]} or 'api_key'"
    if not preset.in_process and not api_base and problem is None:
        problem = "no api_base: this provider needs one"
    version = dep.api_version or defaults.api_version or first_env(preset.version_env, env)
    headers = {**(defaults.headers or {}), **(dep.headers or {})}
    extra: dict[str, Any] = {"stream_usage": preset.stream_usage}
    if preset.local_model:
        spec = cfg.local_models.get(model)
        extra["local_model"] = msgspec.to_builtins(spec) if spec is not None else {}
        if cfg.model_cache_dir:
            extra["cache_dir"] = cfg.model_cache_dir
    target = Target(
        provider=name,
        wire=preset.wire,
        model=model,
        api_base=api_base or "",
        api_key=api_key,
        auth=preset.auth,
        headers=headers,
        api_version=version,
        url_style="azure" if preset.url_style == "azure" else "standard",
        timeouts=_timeouts(dep),
        params=dict(dep.params or {}),
        extra=extra,
    )
    return Deployment(alias, dep.id or f"{alias}:{dep.model}", target, dep.weight, dep.rpm,
                      dep.tpm, dep.prices, problem, credential)


def _timeouts(dep: DeploymentConfig) -> Timeouts:
    if dep.timeout is None and dep.stream_timeout is None and dep.connect_timeout is None:
        return Timeouts()
    return Timeouts(
        total=dep.timeout or 600.0,
        connect=dep.connect_timeout or 10.0,
        read=dep.stream_timeout or dep.timeout or 120.0,
    )


def preset_for(target: Target) -> Preset | None:
    found = find_preset(target.provider)
    return found[1] if found else None
