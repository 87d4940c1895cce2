"""The admin API on hostile input, on SQLite and on a real PostgreSQL: every value out of
range, every NUL byte or control character in an id, a query value or a body is a 400 that
names the field; nothing is written (no key, team or budget, no audit record); no answer is
a 500 or carries a server path. The OpenAPI document describes exactly these limits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gatewise.gateway import Gateway
from gatewise.types.limits import KEY_REF_PATTERN
from tests.fakes.gateway import GatewayServer
from tests.fakes.services import require_pg

MASTER = "sk-master-hostile"
AUTH = {"authorization": f"Bearer {MASTER}"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayServer, Path]]:
    """A gateway with the admin API on, served from a config *file* (so the server knows a
    path it must never tell), without `security.encryption_key`."""
    tmp = tmp_path_factory.mktemp("hostile-secret-dir")
    storage: dict[str, Any] = {"state_dir": str(tmp / "state")}
    schema = None
    if request.param == "postgres":
        url = require_pg()
        schema = f"gw_hostile_{os.getpid()}_{time.time_ns() % 10**9}"
        storage.update(database="postgres", postgres_url=url, postgres_schema=schema)
    path = tmp / "gatewise-hostile.yaml"
    path.write_text(yaml.safe_dump({
        "models": {"m": [{"model": "fake/echo"}]},
        "server": {"master_key": MASTER, "warmup": False},
        "storage": storage}))
    with GatewayServer(gateway=Gateway(path)) as srv:
        _call(srv, "POST", "/admin/teams", {"id": "red"}, expect=201)
        yield srv, path
    if schema is not None:
        import psycopg

        with psycopg.connect(storage["postgres_url"], autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _call(srv: GatewayServer, method: str, path: str, body: Any = None,
          expect: int | None = None, raw: bytes | None = None) -> httpx.Response:
    r = httpx.request(method, srv.url + path, headers=AUTH, timeout=30,
                      json=body if raw is None else None, content=raw)
    if expect is not None:
        assert r.status_code == expect, (method, path, r.status_code, r.text)
    return r


def _state(srv: GatewayServer) -> tuple[int, int, int, int]:
    """(keys, teams, budgets, audit records): what a refused request must leave unchanged."""
    counts = [len(_call(srv, "GET", p, expect=200).json()["data"])
              for p in ("/admin/keys", "/admin/teams", "/admin/budgets")]
    audit = _call(srv, "GET", "/admin/audit?limit=10000", expect=200).json()["data"]
    return counts[0], counts[1], counts[2], len(audit)


def _refused(srv: GatewayServer, server_file: Path, method: str, path: str, param: str,
             body: Any = None, raw: bytes | None = None) -> dict[str, Any]:
    r = _call(srv, method, path, body, raw=raw)
    assert r.status_code == 400, (method, path, body, r.status_code, r.text)
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param, (method, path, body, err)
    assert str(server_file.parent) not in r.text and "Traceback" not in r.text
    assert "\x00" not in r.text and "\\u0000" not in r.text  # the hostile value is not echoed
    return err


QUERY_CASES = [
    # (path, the parameter the 400 must name)
    ("/admin/audit?since_seq=1e20", "since_seq"),
    ("/admin/audit?since_seq=100000000000000000000", "since_seq"),
    ("/admin/audit?since_seq=-1", "since_seq"),
    ("/admin/audit?limit=abc", "limit"),
    ("/admin/usage/records?limit=-1e20", "limit"),
    ("/admin/usage/records?limit=-1", "limit"),
    ("/admin/usage/records?limit=0", "limit"),
    ("/admin/usage/records?limit=10001", "limit"),
    ("/admin/usage/records?since=1e400", "since"),
    ("/admin/usage?until=%00", "until"),
    ("/admin/usage?since=2026-13-01", "since"),
    ("/admin/usage?group_by=team,%00", "group_by"),
    ("/admin/usage?format=xml", "format"),
    ("/admin/keys?team=%00", "team"),
    ("/admin/keys?team=", "team"),
    ("/admin/usage?team=%00", "team"),
    ("/admin/usage/records?key=%00", "key"),
    ("/admin/budgets?subject=%00", "subject"),
    ("/admin/budgets?subject=a%0Ab", "subject"),
    ("/admin/budgets?scope=galaxy", "scope"),
    ("/admin/budgets?scope=null", "scope"),  # a query string has no null: not "no filter"
    ("/admin/keys?team=red%0A", "team"),  # Python's `$` would let a final newline through
]


@pytest.mark.parametrize(("path", "param"), QUERY_CASES)
def test_out_of_range_or_control_characters_in_a_query_are_a_400_naming_it(
        server: tuple[GatewayServer, Path], path: str, param: str) -> None:
    srv, file = server
    _refused(srv, file, "GET", path, param)


PATH_CASES = [
    ("GET", "/admin/keys/%00", "key_id"),
    ("PATCH", "/admin/keys/%00", "key_id"),
    ("POST", "/admin/keys/%00/revoke", "key_id"),
    ("POST", "/admin/keys/%00/rotate", "key_id"),
    ("GET", "/admin/keys/0123456789ab%0A", "key_id"),
    ("GET", "/admin/teams/%00", "team_id"),
    ("PATCH", "/admin/teams/%00", "team_id"),
    ("DELETE", "/admin/teams/%00", "team_id"),
    ("GET", "/admin/teams/" + "a" * 65, "team_id"),
    ("DELETE", "/admin/budgets/%00", "budget_id"),
    ("POST", "/admin/credentials/%00/rotate", "name"),
]


@pytest.mark.parametrize(("method", "path", "param"), PATH_CASES)
def test_a_nul_byte_or_a_malformed_id_in_the_path_is_a_400_naming_it(
        server: tuple[GatewayServer, Path], method: str, path: str, param: str) -> None:
    srv, file = server
    _refused(srv, file, method, path, param, {} if method != "GET" else None)


BODY_CASES: list[tuple[str, str, Any, str]] = [
    # Defect 8: accepted, and then every request of the key got a 429.
    ("POST", "/admin/keys", {"name": "k", "rpm": -5}, "rpm"),
    ("POST", "/admin/keys", {"name": "k", "rpm": 0}, "rpm"),
    ("POST", "/admin/keys", {"name": "k", "rpm": 18446744073709551615}, "rpm"),
    ("POST", "/admin/keys", {"name": "k", "tpm": 2**31}, "tpm"),
    ("POST", "/admin/keys", {"name": "k", "rpm": 5.5}, "rpm"),
    ("POST", "/admin/keys", {"name": "k", "expires_in_s": -1}, "expires_in_s"),
    ("POST", "/admin/keys", {"name": "k", "expires_in_s": 1e12}, "expires_in_s"),
    ("POST", "/admin/keys", {"name": "a\x00b"}, "name"),
    ("POST", "/admin/keys", {"name": "x" * 201}, "name"),
    ("POST", "/admin/keys", {"name": "k", "team": "red\x00"}, "team"),
    ("POST", "/admin/keys", {"name": "k", "user": "\x1b[31m"}, "user"),
    ("POST", "/admin/keys", {"name": "k", "models": ["gpt\x00"]}, "models[0]"),
    ("POST", "/admin/keys", {"name": "k", "models": ["m"] * 257}, "models"),
    ("POST", "/admin/keys", {"name": "k", "permissions": ["keys:everything"]}, "permissions[0]"),
    ("POST", "/admin/keys", {"name": "k", "role": "root"}, "role"),
    ("POST", "/admin/keys", {"name": "k", "role": "team_admin"}, "team"),
    ("POST", "/admin/keys", {"name": "k", "surprise": 1}, "surprise"),
    ("POST", "/admin/teams", {"id": "\x00"}, "id"),
    ("POST", "/admin/teams", {"id": "blue", "rpm": -5}, "rpm"),
    ("POST", "/admin/teams", {"id": "blue", "name": "tab\there"}, "name"),
    ("PATCH", "/admin/teams/red", {"tpm": 0}, "tpm"),
    ("POST", "/admin/budgets", {"scope": "team", "subject": "red", "limit_usd": -1}, "limit_usd"),
    ("POST", "/admin/budgets", {"scope": "team", "subject": "red", "limit_usd": 1e10},
     "limit_usd"),
    ("POST", "/admin/budgets", {"scope": "team", "subject": "red",
                                "limit_tokens": 18446744073709551615}, "limit_tokens"),
    ("POST", "/admin/budgets", {"scope": "team", "subject": "red\x00", "limit_usd": 1},
     "subject"),
    ("POST", "/admin/budgets", {"scope": "user", "subject": "\x00", "limit_usd": 1}, "subject"),
    ("POST", "/admin/budgets", {"scope": "key", "subject": "not-a-key-id", "limit_usd": 1},
     "subject"),
    ("POST", "/admin/budgets", {"scope": "team", "subject": "red"}, "limit_usd"),
    ("POST", "/admin/credentials", {"name": "c\x00", "provider": "openai", "secret": "s"},
     "name"),
    ("POST", "/admin/credentials", {"name": "c", "provider": "openai", "secret": "a\x00"},
     "secret"),
    ("POST", "/admin/credentials", {"name": "c", "provider": "openai", "secret": "s",
                                    "rotate_every_days": 0}, "rotate_every_days"),
]


@pytest.mark.parametrize(("method", "path", "body", "param"), BODY_CASES)
def test_a_nonsensical_body_is_a_400_naming_the_field_and_writes_nothing(
        server: tuple[GatewayServer, Path], method: str, path: str, body: Any,
        param: str) -> None:
    srv, file = server
    before = _state(srv)
    _refused(srv, file, method, path, param, body)
    assert _state(srv) == before


def test_a_number_beyond_json_floats_is_a_400_not_infinity(
        server: tuple[GatewayServer, Path]) -> None:
    srv, file = server
    before = _state(srv)
    raw = b'{"scope": "team", "subject": "red", "limit_usd": 1e400}'
    _refused(srv, file, "POST", "/admin/budgets", "limit_usd", raw=raw)
    _refused(srv, file, "POST", "/admin/keys/0123456789ab/rotate", "overlap_s",
             raw=b'{"overlap_s": -1}')
    assert _state(srv) == before


def test_keys_with_sane_limits_work_and_their_limit_is_what_was_asked(
        server: tuple[GatewayServer, Path]) -> None:
    srv, _ = server
    key = _call(srv, "POST", "/admin/keys", {"name": "sane", "team": "red", "rpm": 2},
                expect=201).json()
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    codes = [httpx.post(srv.url + "/v1/chat/completions", json=chat, timeout=30,
                        headers={"authorization": f"Bearer {key['key']}"}).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]
    _call(srv, "PATCH", f"/admin/keys/{key['id']}", {"rpm": 2**31 - 1}, expect=200)
    _call(srv, "POST", f"/admin/keys/{key['id']}/revoke", {}, expect=200)


def test_an_integral_float_is_an_integer_as_in_json_schema(
        server: tuple[GatewayServer, Path]) -> None:
    """A client generated from the document may send `5.0` for an integer field."""
    srv, file = server
    key = _call(srv, "POST", "/admin/keys", raw=b'{"name": "floaty", "rpm": 5.0, "tpm": 1e3}',
                expect=201).json()
    assert (key["rpm"], key["tpm"]) == (5, 1000)
    _refused(srv, file, "POST", "/admin/keys", "rpm", raw=b'{"name": "k", "rpm": 5.5}')
    _call(srv, "POST", f"/admin/keys/{key['id']}/revoke", {}, expect=200)


def test_the_master_key_is_named_master_where_keys_are_named(
        server: tuple[GatewayServer, Path]) -> None:
    """The ledger and the audit log call the master key `master`: usage filters by it, and the
    key routes know it is no stored key (404, not 400)."""
    srv, _ = server
    _call(srv, "GET", "/admin/usage/records?key=master", expect=200)
    err = _call(srv, "GET", "/admin/keys/master", expect=404).json()["error"]
    assert err["param"] == "key_id"


def test_conflicts_with_the_stored_state_are_409s(server: tuple[GatewayServer, Path]) -> None:
    srv, _ = server
    err = _call(srv, "POST", "/admin/teams", {"id": "red"}, expect=409).json()["error"]
    assert err["code"] == "team_exists" and err["param"] == "id"
    err = _call(srv, "POST", "/admin/keys", {"name": "k", "team": "no-such-team"},
                expect=404).json()["error"]
    assert err["param"] == "team"


def test_storing_a_credential_without_an_encryption_key_is_a_409_naming_the_config_key(
        server: tuple[GatewayServer, Path]) -> None:
    srv, file = server
    before = _state(srv)
    for path, body in (("/admin/credentials", {"name": "openai-main", "provider": "openai",
                                               "secret": "sk-canary-not-stored"}),
                       ("/admin/credentials/openai-main/rotate", {"secret": "sk-canary-2"})):
        r = _call(srv, "POST", path, body, expect=409)
        err = r.json()["error"]
        assert err["code"] == "not_configured" and err["type"] == "invalid_request_error"
        assert "security.encryption_key" in err["message"]
        assert str(file) not in r.text and file.name not in r.text
        assert str(file.parent) not in r.text and "sk-canary" not in r.text
    assert _state(srv) == before
    assert _call(srv, "GET", "/admin/credentials", expect=200).json()["data"] == []


def test_the_document_states_the_limits_the_server_enforces(
        server: tuple[GatewayServer, Path]) -> None:
    srv, _ = server
    doc = httpx.get(srv.url + "/openapi.json", timeout=30).json()
    schemas, paths = doc["components"]["schemas"], doc["paths"]
    create = paths["/admin/keys"]["post"]
    assert create["requestBody"]["required"] is True
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/KeyCreate"}
    assert set(create["responses"]) >= {"201", "400", "401", "403", "413"}
    assert "200" not in create["responses"]
    rpm = next(s for s in schemas["KeyCreate"]["properties"]["rpm"]["anyOf"]
               if s.get("type") == "integer")
    assert (rpm["minimum"], rpm["maximum"]) == (1, 2**31 - 1)
    assert schemas["KeyCreate"]["additionalProperties"] is False
    usd = next(s for s in schemas["BudgetCreate"]["properties"]["limit_usd"]["anyOf"]
               if s.get("type") == "number")
    assert usd["minimum"] == 0 and usd["maximum"] == 1e9
    audit = {p["name"]: p["schema"] for p in paths["/admin/audit"]["get"]["parameters"]}
    assert audit["since_seq"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1,
                                  "default": 0}
    assert audit["limit"]["minimum"] == 1 and audit["limit"]["maximum"] == 10_000
    key_id = paths["/admin/keys/{key_id}"]["get"]["parameters"][0]
    assert key_id["in"] == "path" and key_id["schema"]["pattern"] == KEY_REF_PATTERN
    assert "200" in paths["/admin/keys/{key_id}"]["get"]["responses"]
    assert "409" in paths["/admin/credentials"]["post"]["responses"]
    listed = paths["/admin/keys"]["get"]["responses"]["200"]["content"]["application/json"]
    assert "secret_hash" not in str(listed)
