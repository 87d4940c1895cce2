"""`POST /v1/completions` (OpenAI's legacy text completions) and `GET /v1/models?expand=`.

The official `openai` SDK's `client.completions` works unchanged: the prompt runs as a chat
call (same keys, ledger), answers come back as `text_completion` objects, streamed too.
What has no chat equivalent is a 400 naming the parameter, and nothing is recorded for it.
A key lists only the models it may use; the expansion names provider models, never secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.gateway import GatewayServer

MASTER = "sk-gatewise-completions-master"
ADMIN = {"authorization": f"Bearer {MASTER}"}
UPSTREAM_SECRET = "sk-upstream-never-shown"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    state: Path = tmp_path_factory.mktemp("completions")
    cfg: dict[str, Any] = {
        "models": {
            "text": [{"model": "fake/echo"}],
            "pair": [{"model": "fake/echo"}, {"model": "fake/echo-b"}],
            "secret": [{"model": "openai/gpt-4o-mini", "api_key": UPSTREAM_SECRET,
                        "api_base": "http://user:pw@127.0.0.1:9/v1"}],
        },
        "server": {"master_key": MASTER, "warmup": False},
        "storage": {"state_dir": str(state)},
    }
    with GatewayServer(cfg) as srv:
        yield srv


@pytest.fixture
def client(server: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key=MASTER, max_retries=0) as c:
        yield c


def _records(server: GatewayServer) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = httpx.get(f"{server.url}/admin/usage/records?limit=1000",
                                           headers=ADMIN, timeout=30).json()["data"]
    return data


def test_a_prompt_is_answered_as_a_text_completion(client: openai.OpenAI) -> None:
    out = client.completions.create(model="text", prompt="say hi", max_tokens=50)
    assert out.object == "text_completion"
    assert out.choices[0].text == "Hello! You said: say hi"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.total_tokens > 0


def test_a_one_prompt_list_is_the_same_prompt(client: openai.OpenAI) -> None:
    out = client.completions.create(model="text", prompt=["one two"], echo=False,
                                    logprobs=None, best_of=1)
    assert out.choices[0].text == "Hello! You said: one two"


def test_it_runs_through_the_chat_pipeline_and_is_recorded(server: GatewayServer,
                                                            client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(model="text", prompt="ledger me")
    request_id = raw.headers["x-request-id"]
    assert raw.headers["x-gatewise-deployment"].startswith("text:")
    assert any(r.get("request_id") == request_id and r["alias"] == "text"
               for r in _records(server))


def test_streaming_sends_text_completion_chunks_then_done(client: openai.OpenAI) -> None:
    stream = client.completions.create(model="text", prompt="stream this", stream=True,
                                       stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "text_completion" for c in chunks)
    text = "".join(ch.text for c in chunks for ch in c.choices)
    assert text == "Hello! You said: stream this"
    assert any(ch.finish_reason == "stop" for c in chunks for ch in c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_the_wire_stream_ends_with_done_also_without_the_v1_prefix(
        server: GatewayServer) -> None:
    r = httpx.post(f"{server.url}/completions", headers=ADMIN, timeout=30,
                   json={"model": "text", "prompt": "x", "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.rstrip().endswith("data: [DONE]")
    assert '"object":"text_completion"' in r.text


@pytest.mark.parametrize(("body", "param"), [
    ({"echo": True}, "echo"),
    ({"suffix": "tail"}, "suffix"),
    ({"logprobs": 2}, "logprobs"),
    ({"best_of": 3}, "best_of"),
    ({"prompt": ["one", "two"]}, "prompt"),
    ({"prompt": [1, 2, 3]}, "prompt"),
    ({"temperature": "hot"}, "temperature"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}]}, "messages"),
    ({"functions": []}, "functions"),
])
def test_unsupported_or_bad_input_is_a_400_naming_it_and_nothing_is_recorded(
        server: GatewayServer, body: dict[str, Any], param: str) -> None:
    before = len(_records(server))
    r = httpx.post(f"{server.url}/v1/completions", headers=ADMIN, timeout=30,
                   json={"model": "text", "prompt": "hi", **body})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] is not None and err["param"].startswith(param)
    assert param in err["message"]
    assert len(_records(server)) == before


def test_the_sdk_raises_its_own_error_for_an_unsupported_parameter(
        client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="text", prompt="x", echo=True)
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "echo"


def test_an_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")


def test_models_expand_to_their_provider_models_without_secrets(server: GatewayServer) -> None:
    r = httpx.get(f"{server.url}/v1/models?expand=deployments", headers=ADMIN, timeout=30)
    assert r.status_code == 200
    models = {m["id"]: m for m in r.json()["data"]}
    assert [d["model"] for d in models["pair"]["deployments"]] == ["fake/echo", "fake/echo-b"]
    assert models["secret"]["deployments"][0]["model"] == "openai/gpt-4o-mini"
    assert models["secret"]["deployments"][0]["provider"] == "openai"
    assert UPSTREAM_SECRET not in r.text and "user:pw" not in r.text and "127.0.0.1" not in r.text
    one = httpx.get(f"{server.url}/v1/models/pair?expand=deployments", headers=ADMIN, timeout=30)
    assert len(one.json()["deployments"]) == 2
    plain = httpx.get(f"{server.url}/v1/models", headers=ADMIN, timeout=30).json()["data"]
    assert all("deployments" not in m for m in plain)


def test_an_unknown_expansion_is_a_400(server: GatewayServer) -> None:
    r = httpx.get(f"{server.url}/v1/models?expand=keys", headers=ADMIN, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "expand"
    # An empty value is not one of the expansions either (found by the long fuzz run).
    r = httpx.get(f"{server.url}/v1/models?expand=", headers=ADMIN, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "expand"


def test_a_key_sees_and_expands_only_the_models_it_may_use(server: GatewayServer) -> None:
    key = httpx.post(f"{server.url}/admin/keys", headers=ADMIN, timeout=30,
                     json={"name": "text-only", "models": ["text"]}).json()["key"]
    auth = {"authorization": f"Bearer {key}"}
    listed = httpx.get(f"{server.url}/v1/models?expand=deployments", headers=auth, timeout=30)
    assert [m["id"] for m in listed.json()["data"]] == ["text"]
    hidden = httpx.get(f"{server.url}/v1/models/pair?expand=deployments", headers=auth,
                       timeout=30)
    assert hidden.status_code == 404
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as c:
        assert c.completions.create(model="text", prompt="ok").choices[0].text
        with pytest.raises(openai.PermissionDeniedError):
            c.completions.create(model="pair", prompt="no")
