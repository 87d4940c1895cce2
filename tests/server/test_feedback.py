"""`POST /v1/feedback` through the real server and the official `openai` SDK's client: a caller
rates its own responses (0..1, "up", "down", with a comment); another key's request (unless the
caller is an administrator), another tenant's, or an unknown id is the same 404; a bad score or
comment is a 400; a key without `llm:generate` a 403; every refusal is OpenAI error JSON and
stores nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.gateway import GatewayServer
from tests.waiting import wait_until

MASTER = "sk-gatewise-test-feedback-master"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feedback")


@pytest.fixture(scope="module")
def server(state: Path) -> Iterator[GatewayServer]:
    config = {"models": {"chat": [{"model": "fake/echo"}]},
              "server": {"master_key": MASTER, "warmup": False},
              "storage": {"state_dir": str(state)}, "quality": {"enabled": True}}
    with GatewayServer(config) as srv:
        yield srv


def _admin(srv: GatewayServer, path: str, body: Any) -> Any:
    r = httpx.post(srv.url + path, json=body, headers={"authorization": f"Bearer {MASTER}"},
                   timeout=30)
    assert r.status_code < 300, r.text
    return r.json()


@pytest.fixture(scope="module")
def keys(server: GatewayServer) -> dict[str, str]:
    _admin(server, "/admin/teams", {"id": "red"})
    _admin(server, "/admin/teams", {"id": "blue"})
    made = {name: _admin(server, "/admin/keys", {"name": name, "team": team, "role": role})
            for name, team, role in (("alice", "red", "member"), ("bob", "red", "member"),
                                     ("red-admin", "red", "admin"), ("eve", "blue", "member"),
                                     ("viewer", "red", "viewer"))}
    return {name: k["key"] for name, k in made.items()}


def _client(srv: GatewayServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0)


def _ask(srv: GatewayServer, key: str) -> str:
    """A chat call by `key`; its request id (the `x-request-id` header)."""
    with _client(srv, key) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "How are you?"}])
    return raw.headers["x-request-id"]


def _rate(srv: GatewayServer, key: str, body: dict[str, Any]) -> Any:
    with _client(srv, key) as c:
        return c.post("/feedback", body=body, cast_to=object)


def _refused(srv: GatewayServer, key: str, body: dict[str, Any]) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as err:
        _rate(srv, key, body)
    error = err.value.body
    assert isinstance(error, dict) and set(error) >= {"message", "type", "param", "code"}
    return err.value


def _feedback_rows(state: Path) -> int:
    with sqlite3.connect(state / "quality.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM quality_feedback").fetchone()[0])


def _metric(srv: GatewayServer, sentiment: str) -> float:
    text = httpx.get(srv.url + "/metrics", headers={"authorization": f"Bearer {MASTER}"}).text
    line = f'gatewise_feedback_total{{alias="chat",sentiment="{sentiment}"}} '
    found = [float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)]
    return found[0] if found else 0.0


def test_a_caller_rates_its_own_response(server: GatewayServer, keys: dict[str, str],
                                         state: Path) -> None:
    rid = _ask(server, keys["alice"])
    before = _metric(server, "positive")
    out = _rate(server, keys["alice"], {"request_id": rid, "score": "up",
                                        "comment": "Clear and short.\nThanks!"})
    assert out == {"object": "feedback", "request_id": rid, "score": 1.0,
                   "sentiment": "positive"}
    assert _metric(server, "positive") == before + 1
    # The rating becomes the request's `feedback` score in its quality row.

    def stored() -> Any:
        with sqlite3.connect(state / "quality.db") as db:
            row = db.execute("SELECT scores, key_id FROM quality WHERE request_id = ?",
                             (rid,)).fetchone()
        return row

    wait_until(lambda: stored() is not None and '"feedback":1.0' in stored()[0],
               what="the quality row carries the feedback score")
    with sqlite3.connect(state / "quality.db") as db:
        comment = db.execute("SELECT comment, score FROM quality_feedback WHERE request_id = ?",
                             (rid,)).fetchone()
    assert comment == ("Clear and short.\nThanks!", 1.0)


@pytest.mark.parametrize(("score", "value", "sentiment"), [
    ("down", 0.0, "negative"), (0.5, 0.5, "neutral"), (0.9, 0.9, "positive"), (0, 0.0, "negative")])
def test_scores_are_numbers_from_0_to_1_or_up_and_down(server: GatewayServer,
                                                       keys: dict[str, str], score: Any,
                                                       value: float, sentiment: str) -> None:
    rid = _ask(server, keys["alice"])
    out = _rate(server, keys["alice"], {"request_id": rid, "score": score})
    assert (out["score"], out["sentiment"]) == (value, sentiment)


def test_only_the_requests_own_key_or_an_administrator_of_its_tenant_may_rate_it(
        server: GatewayServer, keys: dict[str, str], state: Path) -> None:
    rid = _ask(server, keys["alice"])
    before = _feedback_rows(state)
    for other in ("bob", "eve"):  # same team, other key; another team
        err = _refused(server, keys[other], {"request_id": rid, "score": "up"})
        assert err.status_code == 404 and err.body["code"] == "request_not_found"  # type: ignore[index]
    # The master key's tenant is not the team's: the same 404.
    assert _refused(server, MASTER, {"request_id": rid, "score": "up"}).status_code == 404
    assert _feedback_rows(state) == before
    out = _rate(server, keys["red-admin"], {"request_id": rid, "score": 0.25})
    assert out["score"] == 0.25


def test_an_unknown_request_is_a_404(server: GatewayServer, keys: dict[str, str]) -> None:
    err = _refused(server, keys["alice"], {"request_id": "req_does_not_exist", "score": 1})
    assert err.status_code == 404
    assert err.body["param"] == "request_id"  # type: ignore[index]


@pytest.mark.parametrize("body", [
    {"score": "up"},
    {"request_id": "RID", "score": 2},
    {"request_id": "RID", "score": -0.1},
    {"request_id": "RID", "score": "meh"},
    {"request_id": "RID", "score": True},
    {"request_id": "RID"},
    {"request_id": "RID", "score": 1, "comment": "x" * 2001},
    {"request_id": "RID", "score": 1, "comment": "bell\x07"},
    {"request_id": "RID", "score": 1, "comment": 5},
    {"request_id": "RID", "score": 1, "rating": 5},
    {"request_id": "not allowed spaces", "score": 1},
    {"request_id": "x" * 129, "score": 1},
])
def test_bad_bodies_are_400s_and_store_nothing(server: GatewayServer, keys: dict[str, str],
                                               state: Path, body: dict[str, Any]) -> None:
    rid = _ask(server, keys["alice"])
    body = {k: (rid if v == "RID" else v) for k, v in body.items()}
    before = _feedback_rows(state), _metric(server, "positive")
    err = _refused(server, keys["alice"], body)
    assert err.status_code == 400
    assert (_feedback_rows(state), _metric(server, "positive")) == before


def test_a_body_that_is_not_a_json_object_is_a_400(server: GatewayServer,
                                                   keys: dict[str, str]) -> None:
    for content in (b"{", b"[1]", b"", b'"up"'):
        r = httpx.post(server.url + "/v1/feedback", content=content,
                       headers={"authorization": f"Bearer {keys['alice']}"})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_a_key_that_cannot_generate_cannot_rate_and_no_key_is_a_401(
        server: GatewayServer, keys: dict[str, str]) -> None:
    rid = _ask(server, keys["alice"])
    assert _refused(server, keys["viewer"], {"request_id": rid, "score": 1}).status_code == 403
    r = httpx.post(server.url + "/v1/feedback", json={"request_id": rid, "score": 1})
    assert r.status_code == 401


def test_the_document_describes_the_route(server: GatewayServer) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    op = doc["paths"]["/v1/feedback"]["post"]
    assert set(op["responses"]) == {"200", "400", "401", "403", "404", "409", "413"}
    req = doc["components"]["schemas"]["FeedbackRequest"]
    assert req["required"] == ["request_id", "score"] and req["additionalProperties"] is False
