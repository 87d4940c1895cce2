"""`Gateway.titles` in process (a scripted model): the `title` prompt the model gets, the
cleaned title, the sync, async and streaming entries, the cache preset for a title alias, and
refusals before anything runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import ConfigError, InvalidRequestError, ProviderResponseError
from gatewise.gateway import Gateway
from gatewise.testing.scripted import ScriptedProvider
from gatewise.titles import TITLE_TEMPLATE
from gatewise.titles.prompt import SHOT_DESCRIPTION
from gatewise.titles.service import max_tokens_for
from gatewise.types.messages import AssistantMessage, SystemMessage, UserMessage
from gatewise.types.responses import Usage


def _gateway(extra: dict[str, Any] | None = None,
             script: Any = '"Add SSO login for enterprise workspaces."', *,
             cache: bool = False) -> tuple[Gateway, ScriptedProvider]:
    """The title alias's cache preset only where a test is about it (its semantic side loads
    the embedding model)."""
    base: dict[str, Any] = {
        "models": {"titles": [{"model": "fake/writer"}], "chat": [{"model": "fake/chat"}]},
        "default_model": "chat", "titles": {"model": "titles", "cache": cache},
        "storage": {"database": "memory"}, "prompts": {"embedder": "none"},
        "cache": {"semantic": {"embedder": "local"}}}
    cfg, warnings = parse_config({**base, **(extra or {})})
    gw = Gateway(resolve_config(cfg, None, {}, warnings))
    model = ScriptedProvider(script, usage=Usage(prompt_tokens=40, completion_tokens=7,
                                                 total_tokens=47))
    gw.pool.register("fake", model)
    return gw, model


@pytest.fixture
def scripted() -> Iterator[tuple[Gateway, ScriptedProvider]]:
    gw, model = _gateway()
    yield gw, model
    gw.close()


async def test_a_title_from_the_title_prompt(scripted: tuple[Gateway, ScriptedProvider]) -> None:
    gw, model = scripted
    out = await gw.titles.agenerate("  Admins of enterprise workspaces want SSO.  ",
                                    style="detailed", max_length=60, category="feature",
                                    examples=["Add audit log export", "Support SCIM"])
    assert out.title == "Add SSO login for enterprise workspaces"
    assert (out.model, out.style, out.category, out.cached, out.cache) == (
        "titles", "detailed", "feature", False, "miss")
    assert out.usage is not None and out.usage.total_tokens == 47
    sent = model.requests[-1]
    assert model.calls == ["writer"]
    assert sent.max_tokens == max_tokens_for(60) and sent.temperature == 0.7
    system, shot, answer, user = sent.messages
    assert isinstance(system, SystemMessage) and isinstance(user, UserMessage)
    assert user.content == "Admins of enterprise workspaces want SSO."  # trimmed
    # The worked example in the requested style, right before the request.
    assert isinstance(shot, UserMessage) and shot.content == SHOT_DESCRIPTION
    assert isinstance(answer, AssistantMessage)
    assert answer.content == ("Add self-service password reset so locked-out users regain "
                              "access without contacting support")
    text = str(system.content)
    assert text.startswith("You are an editor who writes clear, specific titles")
    assert "Style: detailed." in text and "Category: feature (new capability" in text
    assert "at most 60 characters" in text
    assert "- Add audit log export\n- Support SCIM" in text
    await gw.aclose()


async def test_concise_without_category_or_examples_says_neither(
        scripted: tuple[Gateway, ScriptedProvider]) -> None:
    gw, model = scripted
    await gw.titles.agenerate("SSO for admins")
    text = str(model.requests[-1].messages[0].content)
    assert "Style: concise." in text and "at most 80 characters" in text
    assert model.requests[-1].messages[2].content == "Add self-service password reset"
    assert "Category" not in text and "Titles this team" not in text
    await gw.aclose()


def test_generate_runs_without_an_event_loop() -> None:
    gw, _ = _gateway(script="Title: Export audit logs as CSV.")
    try:
        out = gw.titles.generate("Admins need audit logs as CSV", max_length=25)
        assert out.title == "Export audit logs as CSV"
        assert out.to_dict()["object"] == "title"
        assert out.to_dict()["usage"] == {"prompt_tokens": 40, "completion_tokens": 7,
                                          "total_tokens": 47}
    finally:
        gw.close()


async def test_stream_generate_yields_deltas_that_spell_the_title(
        scripted: tuple[Gateway, ScriptedProvider]) -> None:
    gw, _ = scripted
    stream = gw.titles.stream_generate("Admins want SSO", max_length=30)
    deltas = [d async for d in stream]
    assert stream.result is not None
    assert "".join(deltas) == stream.result.title == "Add SSO login for enterprise"
    assert len(deltas) > 1
    await gw.aclose()


async def test_a_refused_request_never_reaches_the_model(
        scripted: tuple[Gateway, ScriptedProvider]) -> None:
    gw, model = scripted
    for kw, param in (({"style": "long"}, "style"), ({"max_length": 5}, "max_length"),
                      ({"category": "chore"}, "category"), ({"examples": [""]}, "examples[0]")):
        with pytest.raises(InvalidRequestError) as err:
            await gw.titles.agenerate("SSO", **kw)
        assert err.value.param == param
    with pytest.raises(InvalidRequestError):
        gw.titles.stream_generate("   ")
    assert model.requests == []
    await gw.aclose()


async def test_an_answer_without_a_title_is_an_upstream_error_not_an_empty_title() -> None:
    gw, _ = _gateway(script='  ""  ')
    with pytest.raises(ProviderResponseError) as err:
        await gw.titles.agenerate("SSO")
    assert err.value.status == 502 and err.value.code == "empty_title"
    await gw.aclose()


async def test_the_title_alias_caches_by_preset_and_regenerate_goes_upstream() -> None:
    gw, model = _gateway(script=["First title", "Second title"], cache=True)
    first = await gw.titles.agenerate("Admins want SSO")
    again = await gw.titles.agenerate("Admins want SSO")
    assert (first.title, first.cached) == ("First title", False)
    assert (again.title, again.cached, again.cache, again.cost_usd) == (
        "First title", True, "hit", 0.0)
    fresh = await gw.titles.agenerate("Admins want SSO", cache={"mode": "no-cache"})
    assert (fresh.title, fresh.cached) == ("Second title", False)
    latest = await gw.titles.agenerate("Admins want SSO")
    assert (latest.title, latest.cached) == ("Second title", True)  # Regenerate replaced it
    assert len(model.requests) == 2
    # Another style is another prompt: never served the concise title.
    assert (await gw.titles.agenerate("Admins want SSO", style="detailed")).cached is False
    await gw.aclose()


async def test_the_preset_leaves_chat_and_a_configured_alias_alone() -> None:
    gw, model = _gateway(script="Same answer", cache=True)
    assert gw.cache is not None
    await gw.chat("hello", model="chat")
    await gw.chat("hello", model="chat")
    assert model.calls == ["chat", "chat"]  # the default alias is not cached by the preset
    await gw.aclose()
    gw, model = _gateway({"cache": {"aliases": {"titles": {"enabled": False}}}}, cache=True)
    assert gw.cache is None
    await gw.titles.agenerate("SSO")
    await gw.titles.agenerate("SSO")
    assert len(model.requests) == 2
    await gw.aclose()
    gw, _ = _gateway({"titles": {"model": "titles", "cache": False}})
    assert gw.cache is None
    await gw.aclose()


async def test_title_is_a_named_prompt_for_chat_too(
        scripted: tuple[Gateway, ScriptedProvider]) -> None:
    gw, model = scripted
    spec = await gw.prompts.get("title")
    assert spec is not None and spec.template == TITLE_TEMPLATE
    out = await gw.chat("Admins want SSO", model="chat", template="title",
                        variables={"style": "concise", "max_length": 40})
    assert out.content == '"Add SSO login for enterprise workspaces."'  # chat: not cleaned
    assert "at most 40 characters" in str(model.requests[-1].messages[0].content)
    await gw.aclose()


async def test_a_config_title_template_wins_over_the_built_in_one() -> None:
    gw, model = _gateway({"prompts": {"embedder": "none", "templates": {"title": {
        "instructions": "House style, {{ max_length }} chars max.",
        "variables": {"style": {"required": False}, "max_length": {"type": "integer"},
                      "category": {"required": False}, "examples": {"type": "array",
                                                                    "required": False}}}}}})
    await gw.titles.agenerate("SSO", max_length=20)
    assert "House style, 20 chars max." in str(model.requests[-1].messages[0].content)
    await gw.aclose()


async def test_without_a_title_model_the_default_alias_serves() -> None:
    gw, model = _gateway({"titles": {}})
    out = await gw.titles.agenerate("SSO")
    assert out.model == "chat" and model.calls == ["chat"]
    await gw.aclose()


def test_a_title_model_that_is_no_alias_is_a_config_error_at_load() -> None:
    with pytest.raises(ConfigError) as err:
        _gateway({"titles": {"model": "titels"}})
    assert err.value.path == "titles.model"
    gw, _ = _gateway({"titles": {"model": "openai/gpt-4o-mini"}})  # a direct model: the router's
    gw.close()


async def test_what_a_caller_writes_is_text_never_template_code(
        scripted: tuple[Gateway, ScriptedProvider]) -> None:
    gw, model = scripted
    await gw.titles.agenerate("{{ ''.__class__ }} {% for x in range(9) %}x{% endfor %}",
                              examples=["{{ 7 * 7 }}"])
    sent = model.requests[-1].messages
    assert "- {{ 7 * 7 }}" in str(sent[0].content)
    assert sent[-1].content == "{{ ''.__class__ }} {% for x in range(9) %}x{% endfor %}"
    await gw.aclose()
