"""The quality judge under the caller's team's PII policy, with real upstreams over HTTP: the
judged question and answer are masked under the policy that covered the caller's call before
the judge call is built, so a seeded e-mail (in the question, and in the answer the caller
got back unmasked) never reaches the judge's upstream, whose recorded bodies are searched.
The judge alias has no policy of its own and the judge runs as no team: only the caller's
policy can have masked it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.gateway import Gateway
from gatewise.pipeline.core import Identity
from tests.fakes.server import FakeServer

EMAIL = "jane.doe@example.com"
OTHER = "john.roe@example.org"


@pytest.fixture(scope="module")
def answering() -> Iterator[FakeServer]:
    """The caller's model: echoes every message, so the answer repeats the e-mail."""
    from tests.fakes.pii_echo_fake import make_app

    with FakeServer(make_app) as srv:
        yield srv


@pytest.fixture(scope="module")
def judging() -> Iterator[FakeServer]:
    from tests.fakes.pii_echo_fake import make_app

    with FakeServer(make_app) as srv:
        yield srv


@pytest.fixture(scope="module")
def swapping() -> Iterator[FakeServer]:
    """A model that names another address before the one it was asked about."""
    from aiohttp import web

    def make_app(srv: FakeServer) -> web.Application:
        async def chat(request: web.Request) -> web.Response:
            return web.json_response({
                "id": "chatcmpl-swap", "object": "chat.completion", "created": 1,
                "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"I wrote to {OTHER}, not {EMAIL}."}}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}})

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        return app

    with FakeServer(make_app) as srv:
        yield srv


def _gateway(answering: FakeServer, judging: FakeServer) -> Gateway:
    cfg, w = parse_config({
        "models": {
            "gpt": [{"model": "openai/gpt-4o-mini", "api_base": answering.url + "/v1",
                     "api_key": "sk-answer"}],
            "judge": [{"model": "openai/gpt-4o", "api_base": judging.url + "/v1",
                       "api_key": "sk-judge"}]},
        "storage": {"database": "memory"},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False}},
        "quality": {"enabled": True, "judge_model": "judge", "judge_sample_rate": 1.0},
        # Only the caller's team has a policy.
        "guardrails": {"teams": {"blue": {"pii": {}}}}})
    return Gateway(resolve_config(cfg, None, {}, w))


def _judge_bodies(judging: FakeServer, since: int) -> str:
    return "\n".join(r.body.decode() for r in judging.requests[since:]
                     if r.path.endswith("/chat/completions"))


async def test_the_judge_never_sees_what_the_callers_team_masks(
        answering: FakeServer, judging: FakeServer) -> None:
    since = len(judging.requests)
    async with _gateway(answering, judging) as gw:
        blue = Identity(tenant="blue", team="blue")
        answer = await gw.chat(f"Write to {EMAIL} and to {OTHER}.", model="gpt", identity=blue)
        await gw.quality.flush()
    assert EMAIL in (answer.content or "")  # the caller got its value back, unmasked
    bodies = _judge_bodies(judging, since)
    assert bodies.count("Question:") == 1, "the judge was not asked"
    for value in (EMAIL, OTHER):
        assert value not in bodies and json.dumps(value)[1:-1] not in bodies
    prompt = json.loads(bodies)["messages"][-1]["content"]
    question, answer_text = prompt.split("\n\nAnswer:\n")
    # Both halves masked: the question as the chain held it, the answer by the judge.
    assert "<EMAIL_1>" in question and "<EMAIL_2>" in question
    assert answer_text.count("<EMAIL_") == 2


async def test_a_caller_no_policy_covers_is_judged_as_it_was_answered(
        answering: FakeServer, judging: FakeServer) -> None:
    """The control: without a policy for the caller, the judge sees the text (so the test
    above could fail)."""
    since = len(judging.requests)
    async with _gateway(answering, judging) as gw:
        await gw.chat(f"Write to {EMAIL}.", model="gpt", identity=Identity(tenant="red",
                                                                           team="red"))
        await gw.quality.flush()
    assert EMAIL in _judge_bodies(judging, since)


async def test_the_judge_reads_the_placeholders_the_upstream_saw(
        swapping: FakeServer, judging: FakeServer) -> None:
    """The answer is masked with the request's own vault: a value keeps the placeholder the
    question carries, and a new value gets a new one. Renumbered afresh, the other address
    would become `<EMAIL_1>`, the question's, and the judge would read a wrong answer as
    right."""
    since = len(judging.requests)
    async with _gateway(swapping, judging) as gw:
        await gw.chat(f"Write to {EMAIL}.", model="gpt", identity=Identity(tenant="blue",
                                                                            team="blue"))
        await gw.quality.flush()
    prompt = json.loads(_judge_bodies(judging, since))["messages"][-1]["content"]
    question, answer_text = prompt.split("\n\nAnswer:\n")
    assert "Write to <EMAIL_1>." in question
    assert answer_text.strip() == "I wrote to <EMAIL_2>, not <EMAIL_1>."
