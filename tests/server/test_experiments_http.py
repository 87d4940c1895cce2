"""A/B experiments through the real server: the response names the arm, the same user keeps
it, and `GET /admin/experiments/{experiment}/report` reports per variant to an administrator
(and a teamless reader), never to a team-bound key, and refuses bad input with a 400."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import GatewayServer

MASTER = "sk-gatewise-test-experiments-master"
CONFIG: dict[str, Any] = {
    "models": {"chat": [{"model": "fake/chat"}], "small": [{"model": "fake/small"}]},
    "server": {"master_key": MASTER},
    "storage": {"database": "memory"},
    "quality": {"enabled": True},
    "experiments": {"e": {"alias": "chat", "sticky": "user", "variants": [
        {"name": "control"}, {"name": "small", "model": "small"}]}},
}


@pytest.fixture(scope="module")
def server() -> Iterator[GatewayServer]:
    with GatewayServer(CONFIG) as srv:
        yield srv


def _get(srv: GatewayServer, path: str, key: str | None = MASTER) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(srv.url + path, headers=headers, timeout=30)


def _chat(srv: GatewayServer, user: str) -> httpx.Response:
    return httpx.post(srv.url + "/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {MASTER}"},
                      json={"model": "chat", "user": user,
                            "messages": [{"role": "user", "content": "hi"}]})


def _key(srv: GatewayServer, **body: Any) -> str:
    r = httpx.post(srv.url + "/admin/keys", json=body, timeout=30,
                   headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


def test_the_arm_is_in_the_response_and_sticky_per_user(server: GatewayServer) -> None:
    arms: dict[str, str] = {}
    for i in range(12):
        r = _chat(server, f"user-{i}")
        assert r.status_code == 200
        arm = r.headers["x-gatewise-experiment"]
        assert arm in ("e/control", "e/small")
        deployment = r.headers["x-gatewise-deployment"]
        assert deployment.startswith("small:" if arm == "e/small" else "chat:")
        arms[f"user-{i}"] = arm
    assert set(arms.values()) == {"e/control", "e/small"}
    for user, arm in arms.items():
        assert _chat(server, user).headers["x-gatewise-experiment"] == arm


def test_the_report_counts_every_request_by_variant(server: GatewayServer) -> None:
    before = _get(server, "/admin/experiments/e/report").json()
    for i in range(4):
        assert _chat(server, f"report-{i}").status_code == 200
    r = _get(server, "/admin/experiments/e/report?since=1d")
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["object"] == "experiment.report" and rep["control"] == "control"
    n = {v["variant"]: v["n"] for v in rep["variants"]}
    was = {v["variant"]: v["n"] for v in before["variants"]}
    assert sum(n.values()) - sum(was.values()) == 4
    assert [c["variant"] for c in rep["comparisons"]] == ["small"]


def test_the_report_is_for_administrators_and_teamless_readers(server: GatewayServer) -> None:
    r = httpx.post(server.url + "/admin/teams", json={"id": "red"}, timeout=30,
                   headers={"authorization": f"Bearer {MASTER}"})
    assert r.status_code in (201, 409)
    viewer = _key(server, name="viewer", role="viewer")
    team_admin = _key(server, name="red-admin", role="team_admin", team="red")
    member = _key(server, name="member", role="member")
    assert _get(server, "/admin/experiments/e/report", viewer).status_code == 200
    assert _get(server, "/admin/experiments/e/report", team_admin).status_code == 403
    assert _get(server, "/admin/experiments/e/report", member).status_code == 403
    assert _get(server, "/admin/experiments/e/report", None).status_code == 401


@pytest.mark.parametrize(("path", "status", "param"), [
    ("/admin/experiments/nope/report", 404, "experiment"),
    ("/admin/experiments/e%00/report", 400, "experiment"),
    ("/admin/experiments/e%0A/report", 400, "experiment"),
    ("/admin/experiments/e/report?since=7d%0A", 400, "since"),
    ("/admin/experiments/e/report?since=yesterday", 400, "since"),
])
def test_bad_input_is_refused_naming_the_field(server: GatewayServer, path: str, status: int,
                                               param: str) -> None:
    r = _get(server, path)
    assert r.status_code == status
    assert r.json()["error"]["param"] == param
