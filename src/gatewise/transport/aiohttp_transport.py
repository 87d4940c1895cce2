"""An alternative transport on a pooled aiohttp client session, kept as a reference.

The default transport is `transport.h1.H1Transport` (what `providers.pool.ProviderPool` builds
when none is given): it spends about half of aiohttp's CPU per request. This one stays because
aiohttp is a well-tested general client: the OpenAI contract tests run the same wire bodies
through both, so a divergence in the lean client shows up as a failing comparison, and a caller
who prefers a general-purpose client can pass this one to the pool. The session is created
lazily inside the running loop (sessions are bound to a loop) and aiohttp is imported lazily,
so `import gatewise` does not pay for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from gatewise.transport.base import (
    ConnectError,
    HttpRequest,
    HttpResponse,
    ProtocolError,
    ReadTimeout,
    Timeouts,
    TransportError,
)


class _Stream:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: Any) -> None:
        self._resp = resp
        self.status: int = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        import aiohttp

        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ReadTimeout("stream stalled: no bytes within the read timeout") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise ProtocolError(f"stream broken: {type(exc).__name__}") from exc

    async def read(self) -> bytes:
        import aiohttp

        try:
            data: bytes = await self._resp.read()
            return data
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise ProtocolError(f"body broken: {type(exc).__name__}") from exc
        except TimeoutError as exc:
            raise ReadTimeout("body read timed out") from exc

    async def aclose(self) -> None:
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


class AiohttpTransport:
    def __init__(self, *, limit: int = 1000, limit_per_host: int = 0, keepalive: float = 60.0):
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._keepalive = keepalive
        # Sessions are bound to the loop that created them; a gateway used from its sync
        # helper thread and from an async app keeps one pool per loop.
        self._sessions: dict[asyncio.AbstractEventLoop, Any] = {}
        self._timeouts: dict[tuple[float | None, float | None, float | None, bool], Any] = {}

    def _get_session(self) -> Any:
        loop = asyncio.get_running_loop()
        s = self._sessions.get(loop)
        if s is None or s.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                keepalive_timeout=self._keepalive,
                ttl_dns_cache=300,
            )
            s = aiohttp.ClientSession(
                connector=connector,
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
                trust_env=False,
            )
            self._sessions[loop] = s
        return s

    def _timeout(self, t: Timeouts, streaming: bool) -> Any:
        key = (t.total, t.connect, t.read, streaming)
        cached = self._timeouts.get(key)
        if cached is None:
            import aiohttp

            cached = aiohttp.ClientTimeout(
                total=None if streaming else t.total,
                sock_connect=t.connect,
                sock_read=t.read,
            )
            self._timeouts[key] = cached
        return cached

    async def send(self, request: HttpRequest) -> HttpResponse:
        import aiohttp

        session = self._get_session()
        try:
            async with session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=self._timeout(request.timeouts, False),
            ) as resp:
                body = await resp.read()
                return HttpResponse(resp.status, resp.headers, body)
        except TimeoutError as exc:
            raise ReadTimeout("request timed out") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(f"cannot connect to {_host(request.url)}") from exc
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                aiohttp.ClientOSError) as exc:
            raise ProtocolError(f"connection to {_host(request.url)} broke: "
                                f"{type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__} talking to {_host(request.url)}") from exc

    async def open_stream(self, request: HttpRequest) -> _Stream:
        import aiohttp

        session = self._get_session()
        try:
            resp = await session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=self._timeout(request.timeouts, True),
            )
        except TimeoutError as exc:
            raise ReadTimeout("no response headers within the timeout") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(f"cannot connect to {_host(request.url)}") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise ProtocolError(f"connection to {_host(request.url)} broke: "
                                f"{type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__} talking to {_host(request.url)}") from exc
        return _Stream(resp)

    async def aclose(self) -> None:
        """Closes the session of the running loop (others close with their loops)."""
        loop = asyncio.get_running_loop()
        s = self._sessions.pop(loop, None)
        if s is not None and not s.closed:
            await s.close()
        for other, sess in list(self._sessions.items()):
            if other.is_closed():
                self._sessions.pop(other, None)
            elif not sess.closed:
                asyncio.run_coroutine_threadsafe(sess.close(), other)


def _host(url: str) -> str:
    """Scheme+host+port only: paths and queries can carry keys (Gemini's `?key=`)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
