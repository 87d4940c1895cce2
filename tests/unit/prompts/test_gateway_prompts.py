"""Prompts through the library (`Gateway`, in process, the fake provider): a request names a
template (`template=`, `metadata.prompt`, or an alias bound to one), the rendered request is
what every later stage sees, each attempt gets its deployment's format (a fallback to a
model without a system role gets the system text merged into its user turn), and a request a
template refuses stores nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import InvalidRequestError
from gatewise.gateway import Gateway
from gatewise.pipeline.core import Call, Handler
from gatewise.prompts import MissingPromptVariableError, PromptNotFoundError
from gatewise.types.messages import SystemMessage, UserMessage, text_of
from gatewise.types.requests import ResponseFormatJSONSchema

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}},
          "required": ["title"]}
PROMPTS: dict[str, Any] = {
    "templates": {
        "title": [
            {"version": 1, "role": "a headline writer",
             "instructions": "Write a {{ style }} title for: {{ description }}",
             "variables": {"description": {"type": "string"},
                           "style": {"type": "string", "default": "concise"}},
             "messages": [{"role": "user", "content": "{{ description }}"}]},
            {"version": 2, "role": "a headline writer",
             "instructions": "Title in at most {{ max_words }} words.",
             "variables": {"max_words": {"type": "integer"}},
             "response_format": {"type": "json_schema",
                                 "json_schema": {"name": "title", "schema": SCHEMA}}}],
        "bank": {"role": "the bank's assistant", "instructions": "Verify identity first."},
    },
    "aliases": {"bank-bot": "bank"},
}


class Seen:
    """A per-call middleware that keeps the request later stages see."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    async def __call__(self, call: Call, next: Handler) -> Any:
        self.requests.append(call.chat_request)
        return await next(call)


def _gateway(seen: Seen | None = None, **extra: Any) -> Gateway:
    cfg, warnings = parse_config({
        "models": {"m": [{"model": "fake/echo"}], "bank-bot": [{"model": "fake/echo"}],
                   "flaky": [{"model": "fake/fail-500"}], "gemma": [{"model": "fake/gemma-2b"}]},
        "router": {"retry": {"max_retries": 0}, "fallbacks": {"flaky": ["gemma"]}},
        "storage": {"database": "memory"},
        "prompts": PROMPTS, **extra})
    return Gateway(resolve_config(cfg, None, {}, warnings),
                   middlewares=[seen] if seen is not None else ())


async def test_a_template_renders_in_front_of_the_request() -> None:
    seen = Seen()
    async with _gateway(seen) as gw:
        r = await gw.chat("and make it catchy", model="m", template="title@1",
                          variables={"description": "a red bicycle"})
    req = seen.requests[0]
    assert req.messages[0] == SystemMessage(content=(
        "You are a headline writer.\n\n## Instructions\n"
        "Write a concise title for: a red bicycle"))
    assert req.messages[1:] == [UserMessage(content="a red bicycle"),
                                UserMessage(content="and make it catchy")]
    assert req.metadata is None  # the prompt keys do not travel upstream
    assert r.completion.choices[0].message.content == "Hello! You said: and make it catchy"


async def test_the_latest_version_adds_its_output_format_and_response_format() -> None:
    seen = Seen()
    async with _gateway(seen) as gw:
        await gw.chat("bikes", model="m", template="title", variables={"max_words": 5})
    req = seen.requests[0]
    system = text_of(req.messages[0].content)
    assert "## Output format\nRespond with a single JSON object that matches" in system
    assert json.loads(system.split("nothing else:\n", 1)[1]) == SCHEMA
    assert isinstance(req.response_format, ResponseFormatJSONSchema)
    assert req.response_format.json_schema.schema == SCHEMA


async def test_metadata_names_a_template_with_json_variables() -> None:
    seen = Seen()
    async with _gateway(seen) as gw:
        await gw.chat("x", model="m", metadata={
            "prompt": "title@1", "prompt_variables": json.dumps({"description": "tea"}),
            "request_type": "titles"})
    assert "Write a concise title for: tea" in text_of(seen.requests[0].messages[0].content)
    assert seen.requests[0].metadata == {"request_type": "titles"}


async def test_an_alias_bound_to_a_template_always_uses_it() -> None:
    seen = Seen()
    async with _gateway(seen) as gw:
        await gw.chat("What is my balance?", model="bank-bot")
        await gw.chat("hi", model="m")
    assert text_of(seen.requests[0].messages[0].content).startswith(
        "You are the bank's assistant.")
    assert seen.requests[1].messages == [UserMessage(content="hi")]


async def test_a_template_alone_needs_no_messages() -> None:
    async with _gateway() as gw:
        r = await gw.chat(model="m", template="title@1", variables={"description": "owls"})
    assert r.completion.choices[0].message.content == "Hello! You said: owls"


async def test_a_fallback_to_a_model_without_a_system_role_gets_the_system_text_merged() -> None:
    async with _gateway() as gw:
        r = await gw.chat("Tell me", model="flaky", template="bank")
    assert r.info.deployment == "gemma:fake/gemma-2b"
    assert r.completion.choices[0].message.content == (
        "Hello! You said: You are the bank's assistant.\n\n## Instructions\n"
        "Verify identity first.\n\nTell me")


@pytest.mark.parametrize(("kw", "error", "param"), [
    ({"template": "nope"}, PromptNotFoundError, "metadata.prompt"),
    ({"template": "title@9"}, PromptNotFoundError, "metadata.prompt"),
    ({"template": "title@1"}, MissingPromptVariableError, "prompt_variables.description"),
    ({"metadata": {"prompt": "title@1", "prompt_variables": "[1]"}}, InvalidRequestError,
     "metadata.prompt_variables"),
])
async def test_a_refused_template_request_stores_nothing(kw: dict[str, Any], error: type,
                                                         param: str) -> None:
    async with _gateway() as gw:
        with pytest.raises(error) as err:
            await gw.chat("hi", model="m", **kw)
        assert err.value.status == 400
        assert err.value.param == param
        records = await gw.accounting.usage_records(since=None, until=None, limit=10,
                                                    team=None, key_id=None)
        assert records == []


async def test_a_template_that_fails_to_render_is_a_400() -> None:
    async with _gateway(prompts={"templates": {"bad": {
            "instructions": "{{ ''.__class__.__mro__ }}"}}}) as gw:
        with pytest.raises(InvalidRequestError) as err:
            await gw.chat("hi", model="m", template="bad")
    assert err.value.status == 400
    assert err.value.code == "prompt_render_error"


def test_the_sync_api_takes_templates_too() -> None:
    gw = _gateway()
    try:
        r = gw.chat_sync(model="m", template="title@1", variables={"description": "sync"})
        assert r.completion.choices[0].message.content == "Hello! You said: sync"
    finally:
        gw.close()


async def test_few_shot_examples_are_chosen_for_the_request() -> None:
    seen = Seen()
    prompts = {"templates": {"faq": {"role": "a help desk", "examples": {"set": "faq", "k": 1}}},
               "example_sets": {"faq": [{"input": "opening hours?", "output": "9-5"},
                                        {"input": "reset password?", "output": "Use the link"}]},
               "embedder": "none"}
    async with _gateway(seen, prompts=prompts) as gw:
        await gw.chat("I need help", model="m", template="faq")
    assert [text_of(m.content) for m in seen.requests[0].messages[1:]] == [
        "opening hours?", "9-5", "I need help"]


@pytest.mark.parametrize("ref", ["title@7", "bad name"])
def test_an_alias_bound_to_a_missing_version_fails_the_load(ref: str) -> None:
    from gatewise.errors import ConfigError

    with pytest.raises(ConfigError, match=r"prompts\.aliases\.m"):
        _gateway(prompts={**PROMPTS, "aliases": {"m": ref}})


async def test_templates_and_sets_from_a_prompt_directory(tmp_path: Any) -> None:
    (tmp_path / "support.yaml").write_text(
        "name: desk\nrole: a help desk\nexamples: {set: faq, k: 1}\n", encoding="utf-8")
    (tmp_path / "sets.yaml").write_text(
        "example_sets:\n  faq:\n    - {input: 'hours?', output: 9-5}\n", encoding="utf-8")
    seen = Seen()
    async with _gateway(seen, prompts={"dir": str(tmp_path), "embedder": "none"}) as gw:
        await gw.chat("when?", model="m", template="desk")
    assert [text_of(m.content) for m in seen.requests[0].messages] == [
        "You are a help desk.", "hours?", "9-5", "when?"]
