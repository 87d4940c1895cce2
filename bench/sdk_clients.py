"""EXTRA_CLIENT factories for the anchor's `sdk_overhead.py --clients extra`.

sdk_overhead.py calls `await factory(base_url, api_key, model, messages)` and times the
zero-argument coroutine function it gets back, N times in a row, with `time.process_time()`
around the loop. Both factories send the body the anchor's httpx baseline sends, and both decode
the whole response, so the difference between them is what gatewise adds in process.

Two baselines, both with a C JSON codec (msgspec, else orjson): stdlib `json` alone costs more
than gatewise's whole typed path and would hide its overhead behind a negative number.
- `transport_client` is the figure's baseline: gatewise's own pooled HTTP client (whatever
  `ProviderPool` uses by default) called raw, so `gatewise - transport` is exactly what the
  library layers (validation, routing, pipeline, adapter, typed result) cost.
- `aiohttp_client` is the usual hand-written way, a pooled aiohttp session. It imports nothing
  from gatewise, so it is also LiteLLM's baseline in LiteLLM's venv.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

Call = Callable[[], Awaitable[Any]]


def _codec() -> tuple[str, Callable[[Any], bytes], Callable[[bytes], Any]]:
    try:
        import msgspec

        return "msgspec", msgspec.json.encode, msgspec.json.decode
    except ImportError:
        pass
    try:
        import orjson  # type: ignore[import-not-found,unused-ignore]

        return "orjson", orjson.dumps, orjson.loads
    except ImportError:
        import json

        return "json", lambda o: json.dumps(o).encode(), json.loads


async def aiohttp_client(base_url: str, api_key: str, model: str,
                         messages: list[dict[str, str]]) -> Call:
    import aiohttp

    name, encode, decode = _codec()
    print(f"# baseline: aiohttp {aiohttp.__version__} + {name}", file=sys.stderr, flush=True)
    body = {"model": model.split("/", 1)[-1], "messages": messages, "max_tokens": 64,
            "temperature": 0.2}
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=60),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    url = f"{base_url.rstrip('/')}/chat/completions"

    async def call() -> Any:
        async with session.post(url, data=encode(body)) as r:
            r.raise_for_status()
            return decode(await r.read())

    return call


async def transport_client(base_url: str, api_key: str, model: str,
                           messages: list[dict[str, str]]) -> Call:
    from gatewise.providers.pool import ProviderPool
    from gatewise.transport import HttpRequest

    _, encode, decode = _codec()
    transport = ProviderPool().transport
    print(f"# baseline: {type(transport).__name__} raw", file=sys.stderr, flush=True)
    body = {"model": model.split("/", 1)[-1], "messages": messages, "max_tokens": 64,
            "temperature": 0.2}
    url = f"{base_url.rstrip('/')}/chat/completions"
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    async def call() -> Any:
        r = await transport.send(HttpRequest("POST", url, headers, encode(body)))
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")
        return decode(r.body)

    return call


async def gatewise_client(base_url: str, api_key: str, model: str,
                          messages: list[dict[str, str]]) -> Call:
    from gatewise.gateway import Gateway

    alias = model.split("/", 1)[-1]
    fd, path = tempfile.mkstemp(prefix="gatewise-bench-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(f"models:\n  {alias}:\n    - model: openai/{alias}\n"
                f"      api_base: {base_url}\n      api_key: {api_key}\n")
    try:
        gw = Gateway(path)
    finally:
        os.unlink(path)

    async def call() -> Any:
        return await gw.chat(model=alias, messages=messages, max_tokens=64, temperature=0.2)

    return call
