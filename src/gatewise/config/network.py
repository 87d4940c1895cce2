"""Proxies and TLS from config and environment into one `transport.network.Network`, at load.

The environment is read here (HTTPS_PROXY, HTTP_PROXY, NO_PROXY; the lower-case spelling wins
when both are set, as curl and requests do) so the transport never reads it. Per-deployment
`ca_bundle` / `client_cert` / `client_key` / `proxy` / `no_proxy` (defaulting to the provider's)
apply to the deployment's origin: the transport pools connections per origin, so deployments
on one origin that ask for different settings are a config error rather than a silent pick.
Files are checked and SSL contexts built now, so a missing or unreadable file stops start-up
with the key that named it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from gatewise.config.schema import Config, DeploymentConfig, ProviderDefaults
from gatewise.config.secrets import resolve_secret
from gatewise.errors import ConfigError
from gatewise.providers.deployment import Deployment
from gatewise.transport.network import (
    Network,
    NetworkConfigError,
    NoProxy,
    OriginSettings,
    Proxy,
    origin_key,
    parse_proxy,
    tls_context,
)

_Wanted = tuple[str | None, str | None, str | None, str | None, bool]


def _env(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name.lower()) or env.get(name.upper()) or None


def _env_proxy(env: Mapping[str, str], name: str) -> Proxy | None:
    value = _env(env, name)
    if value is None:
        return None
    try:
        return parse_proxy(value)
    except NetworkConfigError as exc:
        raise ConfigError(f"environment variable {name.upper()}: {exc}") from None


def _check_file(value: str | None, file: str | None, path: str) -> str | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    if not p.is_file():
        raise ConfigError(f"file not found: {value}", file=file, path=path)
    if not os.access(p, os.R_OK):
        raise ConfigError(f"file not readable: {value}", file=file, path=path)
    return str(p)


def _wanted(dep: DeploymentConfig | None, defaults: ProviderDefaults, env: Mapping[str, str],
            file: str | None, path: str) -> _Wanted | None:
    """The settings a deployment asks for (its own over its provider's); None for none."""
    def pick(name: str) -> str | None:
        own: str | None = getattr(dep, name) if dep is not None else None
        fallback: str | None = getattr(defaults, name)
        return own if own is not None else fallback

    ca, cert, key, proxy = pick("ca_bundle"), pick("client_cert"), pick("client_key"), pick("proxy")
    # A deployment's own `proxy` wins over its provider's `no_proxy: true`.
    direct = bool(dep is not None and dep.no_proxy) or (
        defaults.no_proxy and (dep is None or dep.proxy is None))
    if ca is None and cert is None and key is None and proxy is None and not direct:
        return None
    if key is not None and cert is None:
        raise ConfigError("'client_key' needs 'client_cert'", file=file, path=f"{path}.client_key")
    if proxy is not None and direct:
        raise ConfigError("'proxy' and 'no_proxy: true' contradict each other", file=file,
                          path=f"{path}.proxy")
    return (_check_file(ca, file, f"{path}.ca_bundle"),
            _check_file(cert, file, f"{path}.client_cert"),
            _check_file(key, file, f"{path}.client_key"),
            resolve_secret(proxy, env=env, file=file, path=f"{path}.proxy"), direct)


def _settings(w: _Wanted, file: str | None, path: str) -> OriginSettings:
    ca, cert, key, proxy, direct = w
    ctx = None
    if ca is not None or cert is not None:
        try:
            ctx = tls_context(ca, cert, key)
        except NetworkConfigError as exc:
            raise ConfigError(str(exc), file=file,
                              path=f"{path}.{'client_cert' if cert else 'ca_bundle'}") from None
    parsed = None
    if proxy is not None:
        try:
            parsed = parse_proxy(proxy)
        except NetworkConfigError as exc:
            raise ConfigError(str(exc), file=file, path=f"{path}.proxy") from None
    return OriginSettings(ctx, parsed, direct)


def build_network(cfg: Config, aliases: Mapping[str, Sequence[Deployment]],
                  env: Mapping[str, str], file: str | None) -> Network:
    wanted: dict[tuple[str, str, int], tuple[_Wanted, str]] = {}

    def add(api_base: str, w: _Wanted | None, path: str) -> None:
        key = origin_key(api_base) if w is not None else None
        if key is None or w is None:
            return
        seen = wanted.get(key)
        if seen is None:
            wanted[key] = (w, path)
        elif seen[0] != w:
            raise ConfigError(f"{key[0]}://{key[1]}:{key[2]} already has other proxy/TLS "
                              f"settings (at {seen[1]}); connections are pooled per origin",
                              file=file, path=path)

    for alias, deps in cfg.models.items():
        for i, (dep, resolved) in enumerate(zip(deps, aliases.get(alias, ()), strict=False)):
            provider = resolved.target.provider
            defaults = cfg.providers.get(provider) or ProviderDefaults()
            path = f"models.{alias}[{i}]"
            add(resolved.target.api_base, _wanted(dep, defaults, env, file, path), path)
    for name, defaults in cfg.providers.items():
        if defaults.api_base:  # direct `provider/model` requests go there with these settings
            path = f"providers.{name}"
            add(defaults.api_base, _wanted(None, defaults, env, file, path), path)
    return Network(
        https_proxy=_env_proxy(env, "https_proxy"),
        http_proxy=_env_proxy(env, "http_proxy"),
        no_proxy=NoProxy.parse(_env(env, "no_proxy")),
        origins={key: _settings(w, file, path) for key, (w, path) in wanted.items()},
    )
