"""IdentityScoped: checks keyed off the caller run only for an identified caller, in order."""

from __future__ import annotations

from typing import Any

from gatewise.pipeline.core import ANONYMOUS, Call, Handler, Identity
from gatewise.pipeline.scoped import IdentityScoped
from gatewise.types.requests import ChatRequest


class Mark:
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    async def __call__(self, call: Call, next: Handler) -> Any:
        self.seen.append(self.name)
        return await next(call)


def _call(ident: Identity) -> Call:
    req = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])  # type: ignore[list-item]
    return Call("chat", req, ident)


async def _served(call: Call) -> str:
    return "served"


async def test_an_anonymous_caller_skips_every_inner_check() -> None:
    seen: list[str] = []
    scoped = IdentityScoped([Mark("access", seen), Mark("limits", seen)])
    assert await scoped(_call(ANONYMOUS), _served) == "served"
    assert seen == []


async def test_a_caller_with_a_key_team_user_or_permissions_runs_them_in_order() -> None:
    for ident in (Identity(key_id="k"), Identity(team="t"), Identity(user="u"),
                  Identity(permissions=frozenset())):
        seen: list[str] = []
        scoped = IdentityScoped([Mark("access", seen), Mark("limits", seen)])
        assert await scoped(_call(ident), _served) == "served"
        assert seen == ["access", "limits"]
