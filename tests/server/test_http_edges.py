"""The server at the HTTP level: bad bodies, unknown routes, health, metrics, OpenAPI, and a
client that disconnects mid-stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import aiohttp
import pytest

from gatewise.server.routes.admin import ADMIN_ROUTES
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer


@pytest.fixture(scope="module")
def gateway(openai_fake: FakeServer) -> Iterator[GatewayServer]:
    dep = {"api_base": openai_fake.url + "/v1", "api_key": "sk-upstream"}
    config = {"models": {"gpt": [{"model": "openai/gpt-4o-mini", **dep}],
                         "endless": [{"model": "openai/gpt-endless", **dep}]},
              "server": {"max_body_bytes": 10_000}}
    with GatewayServer(config) as srv:
        yield srv


async def _post(url: str, body: bytes, headers: dict[str, str] | None = None):
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=headers or {
            "content-type": "application/json"}) as r:
        return r.status, await r.json(content_type=None), r.headers


async def _get(url: str):
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text(), r.headers


async def test_malformed_json_is_a_400_in_openai_shape(gateway: GatewayServer) -> None:
    status, body, headers = await _post(gateway.url + "/v1/chat/completions", b'{"model": "gpt",')
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "invalid_json"
    assert headers["x-request-id"].startswith("req_")


async def test_body_over_the_limit_is_a_413(gateway: GatewayServer) -> None:
    status, body, _ = await _post(gateway.url + "/v1/chat/completions", b"x" * 20_000)
    assert status == 413 and body["error"]["code"] == "request_too_large"


async def test_unknown_path_is_a_404_and_wrong_method_a_405(gateway: GatewayServer) -> None:
    status, _, _ = await _get(gateway.url + "/v1/nothing")
    assert status == 404
    status, _, _ = await _get(gateway.url + "/v1/chat/completions")
    assert status == 405


async def test_caller_request_id_is_echoed(gateway: GatewayServer) -> None:
    _, _, headers = await _post(
        gateway.url + "/v1/chat/completions",
        b'{"model":"gpt","messages":[{"role":"user","content":"x"}]}',
        {"content-type": "application/json", "x-request-id": "trace-123"})
    assert headers["x-request-id"] == "trace-123"


async def test_health_ready_openapi(gateway: GatewayServer) -> None:
    assert (await _get(gateway.url + "/healthz"))[0] == 200
    status, text, _ = await _get(gateway.url + "/readyz")
    assert status == 200 and '"ready"' in text
    status, text, _ = await _get(gateway.url + "/openapi.json")
    assert status == 200 and '"/v1/chat/completions"' in text and '"ChatRequest"' in text
    # The admin API is documented from the route table it is dispatched on, permissions too.
    paths = json.loads(text)["paths"]
    for method, template, permission, _ in ADMIN_ROUTES:
        op = paths[template][method.lower()]
        assert op["x-permission"] == permission and op["security"] == [{"bearer": []}]


async def test_metrics_report_requests_latency_and_tokens(gateway: GatewayServer) -> None:
    await _post(gateway.url + "/v1/chat/completions",
                b'{"model":"gpt","messages":[{"role":"user","content":"count me"}]}')
    status, text, headers = await _get(gateway.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    for name in ("gatewise_requests_total", "gatewise_request_duration_seconds_bucket",
                 "gatewise_time_to_first_token_seconds_bucket", "gatewise_tokens_total",
                 "gatewise_errors_total"):
        assert name in text


async def test_client_disconnect_mid_stream_cancels_the_upstream(
        gateway: GatewayServer, openai_fake: FakeServer) -> None:
    body = b'{"model":"endless","stream":true,"messages":[{"role":"user","content":"go"}]}'
    async with aiohttp.ClientSession() as s:
        resp = await s.post(gateway.url + "/v1/chat/completions", data=body,
                            headers={"content-type": "application/json"})
        assert resp.status == 200
        got = 0
        async for _ in resp.content.iter_any():
            got += 1
            if got >= 3:
                break
        resp.close()
    deadline = time.monotonic() + 5
    while "stream-aborted" not in openai_fake.notes and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "stream-aborted" in openai_fake.notes
    assert "stream-finished" not in openai_fake.notes
