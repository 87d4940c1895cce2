"""Proxies and TLS end to end: a chat through a local CONNECT proxy reaches a local TLS upstream
(the OpenAI fake's wire format) signed by a CA made here; NO_PROXY and `no_proxy: true` go
direct; proxy credentials are sent and a refusal is a clean connection error; a private CA is
trusted only when configured; a client certificate is presented when the upstream asks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import ProviderConnectionError
from gatewise.gateway import Gateway
from tests.fakes import openai_fake
from tests.fakes.server import FakeServer

# -- a throwaway PKI ------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(cn: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, Any] | None, *,
           ca: bool = False, server: bool = False, client: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (_name(cn), key)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                          False), critical=True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                            critical=False)
    else:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False)
    if client:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    ca: Path  # signed the upstream's certificate and the client's
    other_ca: Path  # trusted by nobody here
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write(path: Path, cert: x509.Certificate | None = None,
           key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key, other_key, srv_key, cli_key = (ec.generate_private_key(ec.SECP256R1())
                                           for _ in range(4))
    ca = _issue("Test CA", ca_key, None, ca=True)
    other = _issue("Other CA", other_key, None, ca=True)
    issuer = (ca.subject, ca_key)
    return Pki(
        ca=_write(d / "ca.pem", ca), other_ca=_write(d / "other.pem", other),
        server_cert=_write(d / "server.pem", _issue("127.0.0.1", srv_key, issuer, server=True)),
        server_key=_write(d / "server.key", key=srv_key),
        client_cert=_write(d / "client.pem", _issue("gatewise", cli_key, issuer, client=True)),
        client_key=_write(d / "client.key", key=cli_key))


def _server_context(pki: Pki, *, require_client_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        ctx.load_verify_locations(pki.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@pytest.fixture(scope="module")
def tls_upstream(pki: Pki) -> Iterator[FakeServer]:
    with FakeServer(openai_fake.make_app,
                    ssl_context=_server_context(pki, require_client_cert=False)) as srv:
        yield srv


@pytest.fixture(scope="module")
def mtls_upstream(pki: Pki) -> Iterator[FakeServer]:
    with FakeServer(openai_fake.make_app,
                    ssl_context=_server_context(pki, require_client_cert=True)) as srv:
        yield srv


# -- a tiny forward proxy ---------------------------------------------------------------------


@dataclass
class ConnectProxy:
    """CONNECT tunnels and absolute-form forwarding, byte for byte; optionally demands
    `Proxy-Authorization: Basic user:secret`. Records what it was asked."""

    credentials: str | None = None
    tunnels: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)
    refused: int = 0
    port: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if self.credentials is not None:
            want = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if headers.get("proxy-authorization") != want:
                self.refused += 1
                w.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                        b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n"
                        b"Connection: close\r\n\r\n")
                await w.drain()
                w.close()
                return
        if method == "CONNECT":
            self.tunnels.append(target)
            host, _, port = target.rpartition(":")
            ur, uw = await asyncio.open_connection(host, int(port))
            w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            self.forwarded.append(lines[0])
            hostport = target.split("://", 1)[1].split("/", 1)[0]
            host, _, port = hostport.rpartition(":")
            ur, uw = await asyncio.open_connection(host, int(port))
            uw.write(head)
        await asyncio.gather(_pipe(r, uw), _pipe(ur, w))

    def spawn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self.handle(r, w))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except ConnectionError:
        pass
    finally:
        w.close()


@contextlib.asynccontextmanager
async def _proxy(credentials: str | None = None) -> AsyncIterator[ConnectProxy]:
    proxy = ConnectProxy(credentials)
    server = await asyncio.start_server(proxy.spawn, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        for task in list(proxy._tasks):
            task.cancel()
        await asyncio.gather(*proxy._tasks, return_exceptions=True)


def _gateway(api_base: str, env: dict[str, str], **deployment: Any) -> Gateway:
    cfg, warnings = parse_config({
        "models": {"m": [{"model": "openai/gpt-4o-mini", "api_base": api_base + "/v1",
                          "api_key": "sk-test", **deployment}]},
        "router": {"retry": {"max_retries": 0}},
    })
    return Gateway(resolve_config(cfg, None, env, warnings))


async def _chat(gw: Gateway) -> str | None:
    async with gw:
        return (await gw.chat("hello", model="m")).content


# -- specifications ---------------------------------------------------------------------------


async def test_https_goes_through_a_connect_tunnel_to_an_upstream_signed_by_the_configured_ca(
        pki: Pki, tls_upstream: FakeServer) -> None:
    async with _proxy() as proxy:
        gw = _gateway(tls_upstream.url, {"HTTPS_PROXY": proxy.url}, ca_bundle=str(pki.ca))
        assert await _chat(gw)
    assert proxy.tunnels == [f"127.0.0.1:{tls_upstream.port}"]
    assert "proxy-authorization" not in {k.lower() for k in tls_upstream.requests[-1].headers}


async def test_proxy_credentials_from_the_url_are_sent(
        pki: Pki, tls_upstream: FakeServer) -> None:
    async with _proxy("user:s3cret") as proxy:
        env = {"https_proxy": f"http://user:s3cret@127.0.0.1:{proxy.port}"}
        assert await _chat(_gateway(tls_upstream.url, env, ca_bundle=str(pki.ca)))
    assert proxy.refused == 0
    assert len(proxy.tunnels) == 1


async def test_wrong_proxy_credentials_are_a_connection_error_that_names_no_credential(
        pki: Pki, tls_upstream: FakeServer) -> None:
    async with _proxy("user:s3cret") as proxy:
        env = {"HTTPS_PROXY": f"http://user:wr0ng@127.0.0.1:{proxy.port}"}
        with pytest.raises(ProviderConnectionError) as info:
            await _chat(_gateway(tls_upstream.url, env, ca_bundle=str(pki.ca)))
    message = str(info.value)
    assert "proxy authentication failed" in message
    assert "wr0ng" not in message and "user" not in message
    assert proxy.refused == 1


@pytest.mark.parametrize("no_proxy", ["example.com,127.0.0.1", "*", "127.0.0.0/8"])
async def test_no_proxy_hosts_are_reached_directly(
        pki: Pki, tls_upstream: FakeServer, no_proxy: str) -> None:
    async with _proxy() as proxy:
        env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": no_proxy}
        assert await _chat(_gateway(tls_upstream.url, env, ca_bundle=str(pki.ca)))
    assert proxy.tunnels == []


async def test_loopback_is_proxied_unless_listed_and_a_deployment_can_opt_out(
        pki: Pki, tls_upstream: FakeServer) -> None:
    async with _proxy() as proxy:
        env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": "localhost"}  # not 127.0.0.1
        assert await _chat(_gateway(tls_upstream.url, env, ca_bundle=str(pki.ca)))
        assert len(proxy.tunnels) == 1
        assert await _chat(_gateway(tls_upstream.url, env, ca_bundle=str(pki.ca),
                                    no_proxy=True))
        assert len(proxy.tunnels) == 1


async def test_a_deployment_proxy_overrides_the_environment(
        pki: Pki, tls_upstream: FakeServer) -> None:
    async with _proxy() as proxy:
        gw = _gateway(tls_upstream.url, {}, ca_bundle=str(pki.ca), proxy=proxy.url)
        assert await _chat(gw)
    assert len(proxy.tunnels) == 1


async def test_plain_http_through_the_proxy_uses_the_absolute_form(
        openai_fake: FakeServer) -> None:
    async with _proxy("user:pw") as proxy:
        env = {"http_proxy": f"http://user:pw@127.0.0.1:{proxy.port}"}
        assert await _chat(_gateway(openai_fake.url, env))
    assert proxy.forwarded == [f"POST {openai_fake.url}/v1/chat/completions HTTP/1.1"]
    assert proxy.tunnels == []


async def test_wrong_credentials_for_a_plain_http_proxy_are_a_connection_error(
        openai_fake: FakeServer) -> None:
    async with _proxy("user:pw") as proxy:
        env = {"HTTP_PROXY": f"http://user:nope@127.0.0.1:{proxy.port}"}
        with pytest.raises(ProviderConnectionError, match="proxy authentication failed"):
            await _chat(_gateway(openai_fake.url, env))


async def test_an_upstream_signed_by_an_unconfigured_ca_is_refused(
        pki: Pki, tls_upstream: FakeServer) -> None:
    with pytest.raises(ProviderConnectionError, match=r"TLS handshake .* failed"):
        await _chat(_gateway(tls_upstream.url, {}, ca_bundle=str(pki.other_ca)))
    with pytest.raises(ProviderConnectionError, match="TLS handshake"):
        await _chat(_gateway(tls_upstream.url, {}))  # the system store does not know it


async def test_a_client_certificate_is_presented_when_the_upstream_requires_one(
        pki: Pki, mtls_upstream: FakeServer) -> None:
    async with _proxy() as proxy:
        env = {"HTTPS_PROXY": proxy.url}
        assert await _chat(_gateway(mtls_upstream.url, env, ca_bundle=str(pki.ca),
                                    client_cert=str(pki.client_cert),
                                    client_key=str(pki.client_key)))
        with pytest.raises(ProviderConnectionError):
            await _chat(_gateway(mtls_upstream.url, env, ca_bundle=str(pki.ca)))


def test_the_tunnel_works_on_uvloop(pki: Pki, tls_upstream: FakeServer) -> None:
    import uvloop

    async def main() -> tuple[str | None, list[str]]:
        async with _proxy() as proxy:
            gw = _gateway(tls_upstream.url, {"HTTPS_PROXY": proxy.url}, ca_bundle=str(pki.ca))
            return await _chat(gw), proxy.tunnels

    content, tunnels = uvloop.run(main())
    assert content and len(tunnels) == 1
