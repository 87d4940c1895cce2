"""Where a connection goes and how it is secured: proxies (with NO_PROXY) and TLS per origin.

The config loader builds one `Network` at start-up: the proxies it read from the environment
(HTTPS_PROXY / HTTP_PROXY / NO_PROXY; the transport itself never reads the environment) and the
TLS material and proxy overrides each deployment's origin asked for, with every SSL context
built and every file read then, so a bad path is a config error at load, not a failure at the
first request. The transport asks `route(key)` once per origin and caches the answer: nothing
here runs per request.

NO_PROXY follows curl: comma- (or space-) separated; `*` bypasses everything; a name matches
itself and its subdomains (a leading dot is optional); an IP address matches exactly, a CIDR
block its addresses; `name:port` limits an entry to one port. Loopback is NOT bypassed unless
listed: an operator who sets a proxy and wants the local model server reached directly says so,
and a proxy on this host that watches (or is required for) loopback traffic keeps working.
"""

from __future__ import annotations

import base64
import ipaddress
import ssl
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

# (scheme, host, port) of an upstream: the transport's pool key.
OriginKey = tuple[str, str, int]


class NetworkConfigError(ValueError):
    """A proxy URL or TLS file that cannot be used; the loader turns it into a ConfigError.
    Messages never include proxy credentials."""


@dataclass(slots=True, frozen=True)
class Proxy:
    """An HTTP proxy. `authorization` is the whole `Proxy-Authorization` value (a secret:
    kept out of `repr`); `display` is `http://host:port`, safe to log."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        return f"http://{_bracket(self.host)}:{self.port}"


def parse_proxy(url: str) -> Proxy:
    """`http://[user:pass@]host[:port]`; a bare `host:port` is taken as http, as curl does.
    HTTPS and SOCKS proxies are refused rather than silently ignored."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise NetworkConfigError("proxy URL is malformed") from None
    if parts.scheme.lower() != "http":
        raise NetworkConfigError(f"proxy scheme '{parts.scheme}' is not supported "
                                 "(only http:// proxies, which tunnel HTTPS with CONNECT)")
    if not parts.hostname:
        raise NetworkConfigError("proxy URL has no host")
    auth = None
    if parts.username is not None:
        raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(raw).decode("ascii")
    return Proxy(parts.hostname, port or 80, auth)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(slots=True, frozen=True)
class NoProxy:
    """A parsed NO_PROXY list (see the module docstring for the rules)."""

    everything: bool = False
    names: tuple[tuple[str, int | None], ...] = ()
    networks: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None], ...] = ()

    @classmethod
    def parse(cls, value: str | None) -> NoProxy:
        names: list[tuple[str, int | None]] = []
        networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None]] = []
        for raw in (value or "").replace(" ", ",").split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                return cls(everything=True)
            host, port = _split_port(entry)
            try:
                networks.append((ipaddress.ip_network(host, strict=False), port))
            except ValueError:
                names.append((host.lstrip(".").rstrip("."), port))
        return cls(False, tuple(names), tuple(networks))

    def bypass(self, host: str, port: int) -> bool:
        if self.everything:
            return True
        host = host.lower().rstrip(".")
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return any((p is None or p == port) and (host == n or host.endswith("." + n))
                       for n, p in self.names)
        return any((p is None or p == port) and addr in net for net, p in self.networks)


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port or [v6]
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def tls_context(ca_bundle: str | None = None, client_cert: str | None = None,
                client_key: str | None = None) -> ssl.SSLContext:
    """A verifying client context. A `ca_bundle` replaces the system trust store (as curl's
    `--cacert` does): a private CA is trusted, nothing else is. Reads files: load time only."""
    try:
        ctx = ssl.create_default_context(cafile=ca_bundle)
        if client_cert:
            ctx.load_cert_chain(client_cert, client_key)
    except FileNotFoundError as exc:
        raise NetworkConfigError(f"file not found: {exc.filename}") from None
    except PermissionError as exc:
        raise NetworkConfigError(f"file not readable: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise NetworkConfigError(f"unusable TLS material ({exc.__class__.__name__}: "
                                 f"{getattr(exc, 'reason', None) or exc})") from None
    return ctx


@dataclass(slots=True, frozen=True)
class OriginSettings:
    """What one origin's deployments asked for: their own TLS context, their own proxy, or
    `direct` (no proxy whatever the environment says)."""

    ssl_context: ssl.SSLContext | None = None
    proxy: Proxy | None = None
    direct: bool = False


@dataclass(slots=True, frozen=True)
class Route:
    """How to reach one origin: through `proxy` (None: directly), TLS with `ssl_context`
    (None for plain http)."""

    proxy: Proxy | None
    ssl_context: ssl.SSLContext | None


@dataclass(slots=True)
class Network:
    https_proxy: Proxy | None = None
    http_proxy: Proxy | None = None
    no_proxy: NoProxy = field(default_factory=NoProxy)
    origins: dict[OriginKey, OriginSettings] = field(default_factory=dict)
    _default_tls: ssl.SSLContext | None = None

    def route(self, key: OriginKey) -> Route:
        """Decided once per origin (the transport caches it)."""
        scheme, host, port = key
        settings = self.origins.get(key) or OriginSettings()
        ctx: ssl.SSLContext | None = None
        if scheme == "https":
            ctx = settings.ssl_context
            if ctx is None:
                if self._default_tls is None:
                    self._default_tls = ssl.create_default_context()
                ctx = self._default_tls
        proxy = settings.proxy
        if proxy is None and not settings.direct and not self.no_proxy.bypass(host, port):
            proxy = self.https_proxy if scheme == "https" else self.http_proxy
        return Route(None if settings.direct else proxy, ctx)


def origin_key(url: str) -> OriginKey | None:
    """The pool key of an `api_base`, as the transport computes it; None if not http(s)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)
