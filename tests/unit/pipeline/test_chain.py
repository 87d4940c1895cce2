"""`build_chain` and `run_nested`: middleware run in order, outermost first, and a link costs no
coroutine of its own. Every suspension of a call (waiting for the upstream, a store) resumes
each coroutine on its await chain, so a chain of twenty stages must be twenty coroutines deep,
not forty."""

from __future__ import annotations

import asyncio
import inspect
import sys
from typing import Any

from gatewise.pipeline.core import Call, Handler, build_chain, run_nested
from gatewise.types.requests import ChatRequest


class Mark:
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    async def __call__(self, call: Call, next: Handler) -> Any:
        self.seen.append(self.name)
        return await next(call)


def _call() -> Call:
    req = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])  # type: ignore[list-item]
    return Call("chat", req)


def _await_depth() -> int:
    """Coroutine frames on the stack of the running call: the await chain down to here."""
    depth, frame = 0, sys._getframe(1)
    while frame is not None:
        depth += bool(frame.f_code.co_flags & inspect.CO_COROUTINE)
        frame = frame.f_back  # type: ignore[assignment]
    return depth


async def test_the_chain_runs_its_middleware_in_order_then_the_terminal() -> None:
    seen: list[str] = []

    async def terminal(call: Call) -> str:
        seen.append("terminal")
        return "answer"

    chain = build_chain([Mark("a", seen), Mark("b", seen), Mark("c", seen)], terminal)
    assert await chain(_call()) == "answer"
    assert seen == ["a", "b", "c", "terminal"]


async def test_each_middleware_adds_one_coroutine_to_the_await_chain_and_no_more() -> None:
    depths: list[int] = []

    async def terminal(call: Call) -> None:
        depths.append(_await_depth())

    async def run(n: int) -> None:
        await build_chain([Mark(str(i), []) for i in range(n)], terminal)(_call())

    for n in (0, 10):
        await asyncio.get_running_loop().create_task(run(n))
    assert depths[1] - depths[0] == 10


async def test_nested_stages_chosen_per_call_add_one_coroutine_each_too() -> None:
    seen: list[str] = []
    depths: list[int] = []

    async def last(call: Call) -> str:
        depths.append(_await_depth())
        return "done"

    async def run(n: int) -> Any:
        return await run_nested([Mark(str(i), seen) for i in range(n)], _call(), last)

    loop = asyncio.get_running_loop()
    assert await loop.create_task(run(0)) == "done"
    assert await loop.create_task(run(4)) == "done"
    assert seen == ["0", "1", "2", "3"]
    assert depths[1] - depths[0] == 4
