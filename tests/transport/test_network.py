"""NO_PROXY as curl reads it, and how an origin's route is chosen."""

from __future__ import annotations

import pytest

from gatewise.transport.network import (
    Network,
    NetworkConfigError,
    NoProxy,
    OriginSettings,
    parse_proxy,
)


@pytest.mark.parametrize(("entries", "host", "port", "bypass"), [
    ("example.com", "example.com", 443, True),
    ("example.com", "api.example.com", 443, True),
    (".example.com", "api.example.com", 443, True),
    ("example.com", "notexample.com", 443, False),
    ("*", "anything.at.all", 80, True),
    ("10.0.0.1", "10.0.0.1", 443, True),
    ("10.0.0.0/8", "10.2.3.4", 443, True),
    ("10.0.0.0/8", "11.0.0.1", 443, False),
    ("example.com:8443", "example.com", 8443, True),
    ("example.com:8443", "example.com", 443, False),
    ("[::1]", "::1", 443, True),
    ("a.com, b.com", "b.com", 443, True),
    ("", "127.0.0.1", 443, False),
    ("localhost", "127.0.0.1", 443, False),  # names are not resolved; loopback is not implicit
])
def test_no_proxy_matching(entries: str, host: str, port: int, bypass: bool) -> None:
    assert NoProxy.parse(entries).bypass(host, port) is bypass


def test_proxy_urls() -> None:
    assert parse_proxy("proxy:3128").display == "http://proxy:3128"
    assert parse_proxy("http://proxy").port == 80
    with pytest.raises(NetworkConfigError):
        parse_proxy("https://proxy:443")


def test_routes_pick_the_proxy_by_scheme_and_respect_opt_outs() -> None:
    net = Network(https_proxy=parse_proxy("s:1"), http_proxy=parse_proxy("p:2"),
                  no_proxy=NoProxy.parse("skip.me"),
                  origins={("https", "direct.me", 443): OriginSettings(direct=True)})
    proxy = net.route(("https", "a.com", 443)).proxy
    assert proxy is not None and proxy.host == "s"
    proxy = net.route(("http", "a.com", 80)).proxy
    assert proxy is not None and proxy.host == "p"
    assert net.route(("https", "skip.me", 443)).proxy is None
    assert net.route(("https", "direct.me", 443)).proxy is None
    assert net.route(("http", "a.com", 80)).ssl_context is None
    assert net.route(("https", "a.com", 443)).ssl_context is not None
