"""`Runner`: the gateway is one, and orchestration and the tool loop need nothing more."""

from __future__ import annotations

import inspect
from typing import Any

from gatewise import Gateway
from gatewise.orchestration import parallel
from gatewise.pipeline.core import ANONYMOUS, Call, Identity
from gatewise.pipeline.results import CallInfo, ChatResult
from gatewise.pipeline.runner import Runner
from gatewise.tools import ToolRegistry, run_tools
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage
from gatewise.types.validation import chat_request_from_dict, messages_with_prompt


class ModelNameRunner:
    """Not a gateway: answers every call with the name of the model it was asked for."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def run(self, call: Call) -> Any:
        self.calls.append(call)
        message = ResponseMessage(content=call.chat_request.model)
        return ChatCompletion(choices=[Choice(message=message, finish_reason="stop")])

    async def chat(self, prompt: str | None = None, *, model: str | None = None,
                   messages: list[dict[str, Any]] | None = None,
                   identity: Identity = ANONYMOUS, **params: Any) -> ChatResult:
        req = chat_request_from_dict({"model": model or "default",
                                      "messages": messages_with_prompt(prompt, messages),
                                      **params})
        call = Call("chat", req, identity)
        return ChatResult(await self.run(call), CallInfo.of(call))


def test_the_gateway_has_every_method_of_a_runner_with_the_same_parameters() -> None:
    for name, wanted in inspect.getmembers(Runner, inspect.isfunction):
        if name.startswith("_"):
            continue
        got = getattr(Gateway, name)
        assert inspect.iscoroutinefunction(got), name
        have = inspect.signature(got).parameters
        for pname, p in inspect.signature(wanted).parameters.items():
            assert pname in have, f"Gateway.{name} lacks {pname}"
            assert (have[pname].kind, have[pname].default) == (p.kind, p.default), pname


async def test_orchestration_runs_its_branches_through_any_runner() -> None:
    runner: Runner = ModelNameRunner()
    out = await parallel(runner, "hello", models=["a", "b"])
    assert [r.content for r in out.results] == ["a", "b"]


async def test_the_tool_loop_asks_any_runner() -> None:
    runner = ModelNameRunner()
    out = await run_tools(runner, messages=[{"role": "user", "content": "hi"}],
                          registry=ToolRegistry(), identity=ANONYMOUS)
    assert out.completed and out.content == "default"
    assert [c.chat_request.model for c in runner.calls] == ["default"]
