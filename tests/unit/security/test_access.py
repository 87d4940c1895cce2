"""AccessMiddleware: permission per endpoint kind and model allow-lists (key's and team's)."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.errors import ForbiddenError
from gatewise.pipeline.core import Call, Identity
from gatewise.security.access import AccessMiddleware
from gatewise.security.rbac import permissions_for
from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.requests import ChatRequest
from tests.unit.security.conftest import Events


def chat(model: str, ident: Identity) -> Call:
    req = ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}])  # type: ignore[arg-type]
    return Call("chat", req, ident)


def embed(model: str, ident: Identity) -> Call:
    return Call("embed", EmbeddingRequest(model=model, input="hi"), ident)


def key(role: str = "member", models: tuple[str, ...] = (),
        team_models: tuple[str, ...] = ()) -> Identity:
    return Identity(tenant="ml", key_id="abcdef012345", team="ml", role=role,
                    permissions=permissions_for(role), models=models, team_models=team_models)


async def ok(call: Call) -> Any:
    return "served"


async def test_a_member_may_chat_and_embed_any_model_without_allow_lists() -> None:
    mw = AccessMiddleware()
    assert await mw(chat("gpt-4o", key()), ok) == "served"
    assert await mw(embed("text-embedding-3-small", key()), ok) == "served"


async def test_a_viewer_may_not_generate_and_the_denial_is_reported() -> None:
    events = Events()
    mw = AccessMiddleware(events)
    with pytest.raises(ForbiddenError, match="llm:generate") as err:
        await mw(chat("gpt-4o", key("viewer")), ok)
    assert "abcdef012345" not in str(err.value)
    assert events.seen[-1][:2] == ("access", "deny")
    assert events.seen[-1][2]["permission"] == "llm:generate"


async def test_embeddings_need_llm_embed() -> None:
    ident = Identity(key_id="k", role="member", permissions=frozenset({"llm:generate"}))
    mw = AccessMiddleware()
    assert await mw(chat("m", ident), ok) == "served"
    with pytest.raises(ForbiddenError, match="llm:embed"):
        await mw(embed("m", ident), ok)


async def test_the_keys_model_list_allows_exact_names_and_wildcards() -> None:
    mw = AccessMiddleware()
    ident = key(models=("gpt-4o-mini", "claude-*", "openai/*"))
    for model in ("gpt-4o-mini", "claude-3-haiku", "openai/gpt-4.1"):
        assert await mw(chat(model, ident), ok) == "served"
    for model in ("gpt-4o", "GPT-4O-MINI", "xclaude-3", "gemini/openai/x"):
        with pytest.raises(ForbiddenError, match="not allowed for this key") as err:
            await mw(chat(model, ident), ok)
        assert model in str(err.value) and "abcdef012345" not in str(err.value)


async def test_the_teams_model_list_applies_on_top_of_the_keys() -> None:
    mw = AccessMiddleware()
    ident = key(models=("gpt-*",), team_models=("gpt-4o-mini",))
    assert await mw(chat("gpt-4o-mini", ident), ok) == "served"
    with pytest.raises(ForbiddenError, match="not allowed for this team"):
        await mw(chat("gpt-4o", ident), ok)


async def test_the_unrestricted_library_identity_passes() -> None:
    assert await AccessMiddleware()(chat("anything", Identity()), ok) == "served"


async def test_matchers_are_compiled_once_per_allow_list() -> None:
    mw = AccessMiddleware(max_cached=2)
    ident = key(models=("a-*",))
    for _ in range(5):
        await mw(chat("a-1", ident), ok)
    assert len(mw._matchers) == 1
    for i in range(5):
        await mw(chat("x", key(models=(f"x{i}", "x"))), ok)
    assert len(mw._matchers) <= 2
