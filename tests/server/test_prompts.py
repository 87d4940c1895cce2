"""Prompts through the real server and the official `openai` SDK: a template named in
`metadata` renders in front of the request; an unknown template or a missing variable is an
OpenAI-shaped 400 the SDK raises; versions published through the admin API (with its
permissions, on SQLite and PostgreSQL) are what `name` and `name@N` mean; a fallback from an
OpenAI deployment to a Gemma model on Gemini gets the system text merged into the user turn,
and an Anthropic deployment gets XML-tagged sections; `/v1/tokens/count` and
`/v1/cost/estimate` answer what the library does."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer
from tests.fakes.services import require_pg

MASTER = "sk-gatewise-test-prompts"
AUTH = {"authorization": f"Bearer {MASTER}"}
TEMPLATES: dict[str, Any] = {
    "support": {"role": "a support agent for {{ product }}",
                "instructions": "Answer in {{ language }}.",
                "variables": {"product": {"type": "string"},
                              "language": {"type": "string", "default": "English"}}},
}


def _config(openai_up: FakeServer, gemini_up: FakeServer, anthropic_up: FakeServer,
            storage: dict[str, Any]) -> dict[str, Any]:
    base = openai_up.url + "/v1"
    return {
        "models": {
            "gpt": [{"model": "openai/gpt-4o-mini", "api_base": base, "api_key": "sk-up"}],
            "primary": [{"model": "openai/gpt-fail-500", "api_base": base, "api_key": "sk-up"}],
            "gemma": [{"model": "gemini/gemma-3-27b-it", "api_base": gemini_up.url,
                       "api_key": "AIza-test"}],
            "claude": [{"model": "anthropic/claude-3-5-haiku-20241022",
                        "api_base": anthropic_up.url, "api_key": "sk-ant-test"}],
        },
        "server": {"master_key": MASTER, "warmup": False},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False},
                   "fallbacks": {"primary": ["gemma"]}},
        "storage": storage,
        "prompts": {"templates": TEMPLATES},
    }


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, openai_fake: FakeServer, gemini_fake: FakeServer,
           anthropic_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[GatewayServer]:
    storage: dict[str, Any] = {"state_dir": str(tmp_path_factory.mktemp("prompts"))}
    schema = None
    if request.param == "postgres":
        url = require_pg()
        schema = f"gw_prompts_{os.getpid()}_{time.time_ns() % 10**9}"
        storage.update(database="postgres", postgres_url=url, postgres_schema=schema)
    with GatewayServer(_config(openai_fake, gemini_fake, anthropic_fake, storage)) as srv:
        yield srv
    if schema is not None:
        import psycopg

        with psycopg.connect(storage["postgres_url"], autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _client(srv: GatewayServer, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0)


def _admin(srv: GatewayServer, method: str, path: str, body: Any = None, *,
           key: str = MASTER) -> httpx.Response:
    return httpx.request(method, srv.url + path, json=body, timeout=30,
                         headers={"authorization": f"Bearer {key}"})


def _last_body(up: FakeServer) -> dict[str, Any]:
    return json.loads(up.requests[-1].body)


def _ask(c: openai.OpenAI, prompt: str, variables: dict[str, Any] | None = None,
         model: str = "gpt", text: str = "My screen is blank") -> Any:
    md = {"prompt": prompt}
    if variables is not None:
        md["prompt_variables"] = json.dumps(variables)
    return c.chat.completions.create(model=model, metadata=md,
                                     messages=[{"role": "user", "content": text}])


def test_a_template_renders_through_the_openai_sdk(server: GatewayServer,
                                                   openai_fake: FakeServer) -> None:
    with _client(server) as c:
        out = _ask(c, "support", {"product": "Acme TV"})
    assert out.choices[0].message.content
    body = _last_body(openai_fake)
    assert body["messages"] == [
        {"role": "system", "content": "You are a support agent for Acme TV.\n\n"
                                      "## Instructions\nAnswer in English."},
        {"role": "user", "content": "My screen is blank"}]
    assert "prompt" not in (body.get("metadata") or {})


@pytest.mark.parametrize(("prompt", "variables", "code", "param"), [
    ("nope", None, "prompt_not_found", "metadata.prompt"),
    ("support@7", None, "prompt_not_found", "metadata.prompt"),
    ("support", None, "missing_prompt_variable", "prompt_variables.product"),
    ("support", {"product": 42}, "invalid_prompt_variable", "prompt_variables.product"),
    ("support", {"product": "x", "colour": "red"}, "invalid_prompt_variable",
     "prompt_variables.colour"),
])
def test_template_errors_are_openai_shaped_400s(server: GatewayServer, openai_fake: FakeServer,
                                                prompt: str, variables: dict[str, Any] | None,
                                                code: str, param: str) -> None:
    seen = len(openai_fake.requests)
    with _client(server) as c, pytest.raises(openai.BadRequestError) as err:
        _ask(c, prompt, variables)
    assert err.value.status_code == 400
    assert err.value.code == code
    assert err.value.param == param
    assert err.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert len(openai_fake.requests) == seen  # nothing went upstream


def test_a_stream_renders_the_template_too(server: GatewayServer,
                                           openai_fake: FakeServer) -> None:
    with _client(server) as c:
        chunks = list(c.chat.completions.create(
            model="gpt", stream=True, metadata={"prompt": "support",
                                                "prompt_variables": '{"product": "Acme"}'},
            messages=[{"role": "user", "content": "hi"}]))
    assert chunks
    assert _last_body(openai_fake)["messages"][0]["role"] == "system"


def test_admin_versions_are_what_name_and_name_at_n_mean(server: GatewayServer,
                                                         openai_fake: FakeServer) -> None:
    name = f"release-{time.time_ns()}"
    one = _admin(server, "POST", "/admin/prompts", {"name": name, "instructions": "First."})
    two = _admin(server, "POST", "/admin/prompts", {
        "name": name, "instructions": "Second, for {{ who }}.",
        "variables": {"who": {"type": "string"}}})
    assert (one.status_code, two.status_code) == (201, 201)
    assert (one.json()["version"], two.json()["version"]) == (1, 2)
    with _client(server) as c:
        _ask(c, name, {"who": "Bo"})
        latest = _last_body(openai_fake)["messages"][0]["content"]
        _ask(c, f"{name}@1")
        pinned = _last_body(openai_fake)["messages"][0]["content"]
    assert latest == "## Instructions\nSecond, for Bo."
    assert pinned == "## Instructions\nFirst."
    versions = _admin(server, "GET", f"/admin/prompts/{name}/versions").json()
    assert [v["version"] for v in versions["data"]] == [1, 2]
    assert _admin(server, "GET", f"/admin/prompts/{name}/versions/1").json()["spec"][
        "instructions"] == "First."
    assert _admin(server, "GET", f"/admin/prompts/{name}").json()["version"] == 2
    listed = {p["name"]: p for p in _admin(server, "GET", "/admin/prompts").json()["data"]}
    assert listed[name]["version"] == 2
    assert listed["support"]["source"] == "config"
    gone = _admin(server, "DELETE", f"/admin/prompts/{name}/versions/2")
    assert gone.json() == {"id": f"{name}@2", "deleted": 1}
    assert _admin(server, "GET", f"/admin/prompts/{name}").json()["version"] == 1
    assert _admin(server, "DELETE", f"/admin/prompts/{name}").json()["deleted"] == 1
    assert _admin(server, "GET", f"/admin/prompts/{name}").status_code == 404
    with _client(server) as c, pytest.raises(openai.BadRequestError) as err:
        _ask(c, name)
    assert err.value.code == "prompt_not_found"


def test_admin_refuses_bad_templates_and_config_names(server: GatewayServer) -> None:
    bad = _admin(server, "POST", "/admin/prompts", {"name": "x", "instructions": "{% if %}"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "prompt_render_error"
    unknown = _admin(server, "POST", "/admin/prompts", {"name": "x", "role": "r", "colour": 1})
    assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "colour")
    empty = _admin(server, "POST", "/admin/prompts", {"name": "x"})
    assert empty.status_code == 400
    clash = _admin(server, "POST", "/admin/prompts", {"name": "support", "role": "r"})
    assert clash.status_code == 409
    assert _admin(server, "DELETE", "/admin/prompts/support").status_code == 409
    assert _admin(server, "GET", "/admin/prompts/no%00pe").status_code == 400


def test_admin_prompts_need_their_permissions(server: GatewayServer) -> None:
    keys = {}
    for role in ("member", "viewer", "admin"):
        r = _admin(server, "POST", "/admin/keys", {"name": f"p-{role}", "role": role})
        assert r.status_code == 201, r.text
        keys[role] = r.json()["key"]
    reader = _admin(server, "POST", "/admin/keys", {"name": "p-reader", "role": "viewer",
                                                     "permissions": ["prompts:read"]})
    keys["reader"] = reader.json()["key"]
    body = {"name": f"authz-{time.time_ns()}", "role": "a tester"}
    assert _admin(server, "POST", "/admin/prompts", body, key="sk-gw-wrong").status_code == 401
    for role in ("member", "viewer", "reader"):
        assert _admin(server, "POST", "/admin/prompts", body, key=keys[role]).status_code == 403
    for role in ("member", "viewer"):
        assert _admin(server, "GET", "/admin/prompts", key=keys[role]).status_code == 403
    assert _admin(server, "GET", "/admin/prompts", key=keys["reader"]).status_code == 200
    assert _admin(server, "POST", "/admin/prompts", body, key=keys["admin"]).status_code == 201
    assert _admin(server, "DELETE", f"/admin/prompts/{body['name']}",
                  key=keys["reader"]).status_code == 403
    assert _admin(server, "DELETE", f"/admin/prompts/{body['name']}",
                  key=keys["admin"]).status_code == 200


def test_a_fallback_to_another_family_gets_its_own_format(
        server: GatewayServer, openai_fake: FakeServer, gemini_fake: FakeServer) -> None:
    with _client(server) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="primary", metadata={"prompt": "support",
                                       "prompt_variables": '{"product": "Acme"}'},
            messages=[{"role": "user", "content": "It is broken"}])
    assert raw.headers["x-gatewise-deployment"] == "gemma:gemini/gemma-3-27b-it"
    first = next(json.loads(r.body) for r in reversed(openai_fake.requests)
                 if "gpt-fail-500" in r.body.decode())
    assert first["messages"][0]["role"] == "system"  # OpenAI got a system message
    gemma = json.loads(gemini_fake.requests[-1].body)
    assert "systemInstruction" not in gemma and "system_instruction" not in gemma
    assert gemma["contents"][0]["parts"][0]["text"] == (
        "You are a support agent for Acme.\n\n## Instructions\nAnswer in English.\n\n"
        "It is broken")


def test_an_anthropic_deployment_gets_xml_sections(server: GatewayServer,
                                                   anthropic_fake: FakeServer) -> None:
    with _client(server) as c:
        _ask(c, "support", {"product": "Acme"}, model="claude")
    body = json.loads(anthropic_fake.requests[-1].body)
    system = body["system"] if isinstance(body["system"], str) else body["system"][0]["text"]
    assert system == ("You are a support agent for Acme.\n\n<instructions>\nAnswer in English."
                      "\n</instructions>")


def test_token_count_and_cost_estimate_over_http(server: GatewayServer) -> None:
    body = {"model": "gpt", "max_tokens": 50,
            "messages": [{"role": "user", "content": "How many moons does Mars have?"}],
            "metadata": {"prompt": "support", "prompt_variables": '{"product": "Acme"}'}}
    count = httpx.post(server.url + "/v1/tokens/count", json=body, headers=AUTH, timeout=30)
    cost = httpx.post(server.url + "/v1/cost/estimate", json=body, headers=AUTH, timeout=30)
    assert count.status_code == 200, count.text
    c, e = count.json(), cost.json()
    assert c["object"] == "token_count" and c["exact"] is True
    assert c["deployments"][0]["tokenizer"] == "o200k_base"
    assert e["prompt_tokens"] == c["prompt_tokens"] > 20  # the template counts
    assert (e["completion_tokens"], e["completion_basis"]) == (50, "max_tokens")
    assert e["total_usd"] > 0
    plain = httpx.post(server.url + "/v1/tokens/count", json={**body, "metadata": None},
                       headers=AUTH, timeout=30).json()
    assert plain["prompt_tokens"] < c["prompt_tokens"]
    missing = httpx.post(server.url + "/v1/tokens/count", json={**body, "model": "nope"},
                         headers=AUTH, timeout=30)
    assert missing.status_code == 404
    assert httpx.post(server.url + "/v1/tokens/count", json=body, timeout=30).status_code == 401
    bad = httpx.post(server.url + "/v1/cost/estimate",
                     json={**body, "metadata": {"prompt": "nope"}}, headers=AUTH, timeout=30)
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "prompt_not_found")


def test_estimates_check_model_access(server: GatewayServer) -> None:
    r = _admin(server, "POST", "/admin/keys", {"name": "only-claude", "role": "member",
                                               "models": ["claude"]})
    key = r.json()["key"]
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    refused = httpx.post(server.url + "/v1/tokens/count", json=body, timeout=30,
                         headers={"authorization": f"Bearer {key}"})
    assert refused.status_code == 403
    ok = httpx.post(server.url + "/v1/tokens/count", json={**body, "model": "claude"},
                    timeout=30, headers={"authorization": f"Bearer {key}"})
    assert ok.status_code == 200
    assert ok.json()["exact"] is False  # Claude's tokenizer is unpublished: an estimate


def test_the_document_describes_the_new_routes(server: GatewayServer) -> None:
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    assert doc["paths"]["/v1/tokens/count"]["post"]["responses"]["200"]
    assert doc["paths"]["/v1/cost/estimate"]["post"]["operationId"] == "estimateCost"
    assert doc["paths"]["/admin/prompts"]["post"]["x-permission"] == "prompts:manage"
    assert "TokenEstimate" in doc["components"]["schemas"]


def test_a_template_failing_at_render_time_is_a_400_never_a_500(server: GatewayServer) -> None:
    name = f"broken-{time.time_ns()}"
    for text in ("{{ 1 / 0 }}", "{{ ''.__class__.__mro__ }}", "{{ who.__class__ }}"):
        r = _admin(server, "POST", "/admin/prompts", {"name": name, "instructions": text})
        assert r.status_code == 201, r.text  # it compiles; it fails when rendered
        with _client(server) as c, pytest.raises(openai.BadRequestError) as err:
            _ask(c, name, {"who": "x"})
        assert err.value.code == "prompt_render_error"


def test_a_variable_value_is_text_never_template_code(server: GatewayServer,
                                                      openai_fake: FakeServer) -> None:
    with _client(server) as c:
        _ask(c, "support", {"product": "{{ ''.__class__ }}{% raw %}"})
    assert _last_body(openai_fake)["messages"][0]["content"].startswith(
        "You are a support agent for {{ ''.__class__ }}{% raw %}.")
