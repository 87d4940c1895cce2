"""PII canary, end to end through the real server and the official `openai` SDK: personal data
seeded in the system prompt, the history (assistant text and tool-call arguments), a tool
result and the user message never reaches the upstream (its recorded bodies are searched), and
the client gets every value back, streamed and not, in text and in tool-call arguments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.gateway import Gateway
from tests.fakes.gateway import GatewayServer
from tests.fakes.server import FakeServer

MASTER = "sk-gatewise-test-master"
EMAIL = "john.smith@example.com"
CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
SSN = "536-22-8726"
PHONE = "+44 20 7123 4567"
IP = "10.0.0.12"
SEEDED = (EMAIL, CARD, IBAN, SSN, PHONE, IP)

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": f"You help the customer whose e-mail is {EMAIL}."},
    {"role": "user", "content": f"My card {CARD} was charged twice."},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
     "function": {"name": "lookup", "arguments": json.dumps({"iban": IBAN, "ssn": SSN})}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": f"account found; last login from {IP}"},
    {"role": "user", "content": f"Please call me on {PHONE} about {CARD}."},
]
TOOLS = [{"type": "function", "function": {"name": "notify", "parameters": {
    "type": "object", "properties": {"echo": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeServer]:
    from tests.fakes.pii_echo_fake import make_app

    with FakeServer(make_app) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(upstream: FakeServer) -> Iterator[openai.OpenAI]:
    cfg, warnings = parse_config({
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": upstream.url + "/v1",
                            "api_key": "sk-upstream"}]},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        # The guard as users configure it: every alias, default PII policy (mask).
        "guardrails": {"default": {"pii": {}}},
    })
    gateway = Gateway(resolve_config(cfg, None, {}, warnings))
    with GatewayServer(gateway=gateway) as srv, \
            openai.OpenAI(base_url=srv.url + "/v1", api_key=MASTER, max_retries=0) as c:
        yield c


def upstream_bodies(upstream: FakeServer, since: int) -> str:
    return "\n".join(r.body.decode() for r in upstream.requests[since:])


def assert_nothing_leaked(upstream: FakeServer, since: int) -> None:
    bodies = upstream_bodies(upstream, since)
    assert bodies, "the upstream saw no request"
    for value in SEEDED:
        assert value not in bodies, value
        assert json.dumps(value)[1:-1] not in bodies, value
    assert "<CARD_1>" in bodies and "<EMAIL_1>" in bodies


def assert_all_restored(text: str) -> None:
    for value in SEEDED:
        assert value in text, value
    assert "<" not in text.replace("<REDACTED>", ""), text


def test_nothing_leaks_and_the_answer_is_restored(client: openai.OpenAI, upstream: FakeServer) -> None:
    since = len(upstream.requests)
    out = client.chat.completions.create(model="gpt", messages=MESSAGES)  # type: ignore[arg-type]
    assert_nothing_leaked(upstream, since)
    assert_all_restored(out.choices[0].message.content or "")


def test_nothing_leaks_and_the_streamed_answer_is_restored(client: openai.OpenAI,
                                                          upstream: FakeServer) -> None:
    since = len(upstream.requests)
    stream = client.chat.completions.create(model="gpt", messages=MESSAGES, stream=True,  # type: ignore[arg-type]
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert_nothing_leaked(upstream, since)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert_all_restored(text)
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_arguments_come_back_restored(client: openai.OpenAI, upstream: FakeServer,
                                                stream: bool) -> None:
    since = len(upstream.requests)
    if stream:
        chunks = list(client.chat.completions.create(
            model="gpt", messages=MESSAGES, tools=TOOLS, stream=True))  # type: ignore[arg-type]
        args = "".join(tc.function.arguments or "" for c in chunks if c.choices
                       for tc in c.choices[0].delta.tool_calls or () if tc.function)
    else:
        out = client.chat.completions.create(model="gpt", messages=MESSAGES, tools=TOOLS)  # type: ignore[arg-type]
        calls = out.choices[0].message.tool_calls
        assert calls
        args = calls[0].function.arguments  # type: ignore[union-attr]
    assert_nothing_leaked(upstream, since)
    assert json.loads(args) == {"echo": f"Please call me on {PHONE} about {CARD}."}


# -- names and every other canary type, in every role, with the names layer on ----------------

def canary_subset() -> list[Any]:
    """Two canaries of each entity type in each role (names: four): about 110 values."""
    from tests.pii_canaries import canaries

    picked: list[Any] = []
    counts: dict[tuple[str, str], int] = {}
    for c in canaries():
        key = (c.entity, c.role)
        if counts.get(key, 0) < (4 if c.entity == "PERSON" else 2):
            counts[key] = counts.get(key, 0) + 1
            picked.append(c)
    return picked


CANARIES = canary_subset()


@pytest.fixture(scope="module")
def ner_client(upstream: FakeServer) -> Iterator[openai.OpenAI]:
    cfg, warnings = parse_config({
        "models": {"gpt": [{"model": "openai/gpt-4o-mini", "api_base": upstream.url + "/v1",
                            "api_key": "sk-upstream"}]},
        "server": {"master_key": MASTER},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "guardrails": {"default": {"pii": {"ner": True}}},
    })
    gateway = Gateway(resolve_config(cfg, None, {}, warnings))
    with GatewayServer(gateway=gateway) as srv, \
            openai.OpenAI(base_url=srv.url + "/v1", api_key=MASTER, max_retries=0, timeout=60) as c:
        yield c


def test_the_canary_subset_covers_every_role_and_type() -> None:
    from tests.pii_canaries import COUNTS, ROLES

    assert {(c.entity, c.role) for c in CANARIES} == {(e, r) for e in COUNTS for r in ROLES}
    assert sum(c.entity == "PERSON" for c in CANARIES) == 4 * len(ROLES)


@pytest.mark.parametrize("stream", [False, True])
def test_no_seeded_name_or_value_reaches_the_upstream(ner_client: openai.OpenAI, upstream: FakeServer,
                                                      stream: bool) -> None:
    from tests.pii_canaries import conversation

    since = len(upstream.requests)
    messages = conversation(CANARIES)
    if stream:
        chunks = list(ner_client.chat.completions.create(model="gpt", messages=messages,  # type: ignore[arg-type]
                                                         stream=True))
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        out = ner_client.chat.completions.create(model="gpt", messages=messages)  # type: ignore[arg-type]
        answer = out.choices[0].message.content or ""
    bodies = upstream_bodies(upstream, since)
    assert bodies, "the upstream saw no request"
    leaked = [(c.entity, c.role, c.value) for c in CANARIES
              if c.value in bodies or json.dumps(c.value)[1:-1] in bodies]
    # Nor any part of a name (a given name masked, the family name sent, would be a leak).
    leaked += [(c.entity, c.role, part) for c in CANARIES if c.entity == "PERSON"
               for part in c.value.split() if len(part) > 3 and part in bodies]
    assert leaked == []
    assert "<PERSON_1>" in bodies
    # The echo repeats every message: the client gets every value back, no placeholder left.
    missing = [c.value for c in CANARIES if c.value not in answer]
    assert missing == []
    assert "<PERSON_" not in answer
