"""`run_tools`: model → validated call → handler with the caller's identity → result → model,
until an answer or the step limit."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.guardrails.tools.middleware import ToolGuardMiddleware
from gatewise.pipeline.core import Identity
from gatewise.tools import ToolRegistry, run_tools
from gatewise.types.messages import ToolMessage
from gatewise.types.requests import ChatRequest
from tests.unit.tools.support import call, fake_tools_gateway, scripted_gateway

TELLER = Identity(tenant="bank", permissions=frozenset({"llm:generate", "payments:send"}))
VIEWER = Identity(tenant="bank", permissions=frozenset({"llm:generate"}))


def bank(log: list[Any]) -> ToolRegistry:
    reg = ToolRegistry()

    @reg.register
    def balance(account: str, identity: Identity) -> dict[str, Any]:
        """Balance of an account."""
        log.append(("balance", account, identity.tenant))
        return {"account": account, "eur": 120.5}

    @reg.register(permission="payments:send")
    async def transfer(to: str, amount: float) -> str:
        log.append(("transfer", to, amount))
        return "done"

    @reg.register
    def flaky(x: int) -> str:
        raise ConnectionError("core banking is down")

    return reg


def last_tool_result(req: ChatRequest) -> str:
    msg = req.messages[-1]
    assert isinstance(msg, ToolMessage)
    return str(msg.content)


async def test_a_tool_call_runs_with_the_callers_identity_and_its_result_reaches_the_model() -> None:
    log: list[Any] = []
    gw, model = scripted_gateway([call("balance", {"account": "A1"}), "You have 120.50 EUR."])
    async with gw:
        out = await run_tools(gw, messages=[{"role": "user", "content": "balance?"}],
                              registry=bank(log), identity=TELLER)
    assert out.completed and out.stop_reason == "answer" and out.turns == 2
    assert out.content == "You have 120.50 EUR."
    assert log == [("balance", "A1", "bank")]
    [step] = out.steps
    assert step.executed and step.error is None and step.arguments == {"account": "A1"}
    assert last_tool_result(model.requests[1]) == '{"account": "A1", "eur": 120.5}'
    offered = [t.function.name for t in model.requests[0].tools or []]
    assert offered == ["balance", "transfer", "flaky"]


async def test_the_model_is_not_offered_and_cannot_run_a_tool_the_caller_lacks() -> None:
    log: list[Any] = []
    gw, model = scripted_gateway([call("transfer", {"to": "attacker", "amount": 9999}), "ok"])
    async with gw:
        out = await run_tools(gw, messages=[{"role": "user", "content": "pay"}],
                              registry=bank(log), identity=VIEWER)
    assert "transfer" not in [t.function.name for t in model.requests[0].tools or []]
    assert log == []
    [step] = out.steps
    assert not step.executed and step.error == "transfer: the caller is not permitted to use this tool"
    assert last_tool_result(model.requests[1]).startswith("error: the call was rejected")


async def test_an_invalid_call_is_answered_with_the_error_and_not_executed() -> None:
    log: list[Any] = []
    gw, _ = scripted_gateway([call("balance", {"account": "A1", "sql": "DROP TABLE x"}),
                                  call("balance", {"account": "A1"}), "fine"])
    async with gw:
        out = await run_tools(gw, messages=[{"role": "user", "content": "b"}], registry=bank(log),
                              identity=TELLER)
    assert [s.executed for s in out.steps] == [False, True]
    assert "unexpected argument 'sql'" in (out.steps[0].error or "")
    assert log == [("balance", "A1", "bank")] and out.content == "fine"


async def test_a_failing_handler_becomes_a_tool_result_not_a_crash() -> None:
    gw, model = scripted_gateway([call("flaky", {"x": 1}), "sorry, try later"])
    async with gw:
        out = await run_tools(gw, messages=[{"role": "user", "content": "go"}], registry=bank([]),
                              identity=TELLER)
    assert out.completed and out.steps[0].executed
    assert out.steps[0].error == "ConnectionError: core banking is down"
    assert last_tool_result(model.requests[1]) == \
        "error: the tool failed: ConnectionError: core banking is down"


async def test_the_step_limit_stops_a_model_that_never_stops_calling_tools() -> None:
    log: list[Any] = []
    gw = fake_tools_gateway()  # the shipped fake that never stops calling the first tool
    async with gw:
        out = await run_tools(gw, messages=[{"role": "user", "content": "loop"}],
                              registry=bank(log), identity=TELLER, max_steps=3)
    assert not out.completed and out.stop_reason == "max_steps" and out.turns == 3
    assert len(out.steps) == 2 and len(log) == 2  # the third turn's call is not run
    assert out.final.tool_calls  # the last answer is still a tool call, and says so


async def test_tool_choice_applies_to_the_first_turn_only() -> None:
    gw, model = scripted_gateway([call("balance", {"account": "A"}), "done"])
    async with gw:
        await run_tools(gw, messages=[{"role": "user", "content": "b"}], registry=bank([]),
                        identity=TELLER, tool_choice="required")
    assert [r.tool_choice for r in model.requests] == ["required", None]


async def test_a_routed_turn_can_forbid_further_calls_once_its_tool_ran() -> None:
    """The application chose the tool; after it ran, the model may only answer in words."""
    log: list[Any] = []
    gw, model = scripted_gateway([call("balance", {"account": "A"}), "You have 120.50 EUR."])
    async with gw:
        out = await run_tools(gw, messages=[{"role": "user", "content": "b"}], registry=bank(log),
                              identity=TELLER, then_tool_choice="none",
                              tool_choice={"type": "function", "function": {"name": "balance"}})
    assert out.content == "You have 120.50 EUR." and log == [("balance", "A", "bank")]
    first, then = (r.tool_choice for r in model.requests)
    assert first is not None and first.function.name == "balance"  # type: ignore[union-attr]
    assert then == "none"


async def test_the_loop_works_behind_the_guard_middleware() -> None:
    log: list[Any] = []
    reg = bank(log)
    gw, model = scripted_gateway([call("balance", {"account": 5}), call("balance", {"account": "A"}),
                                  "done"], [ToolGuardMiddleware(reg)])
    async with gw:
        out = await run_tools(gw, messages=[{"role": "user", "content": "b"}], registry=reg,
                              identity=TELLER)
    # The guard repaired turn one inside the gateway; the loop only ever saw a valid call.
    assert out.content == "done" and len(model.requests) == 3 and len(out.steps) == 1
    assert log == [("balance", "A", "bank")]


async def test_max_steps_must_be_positive() -> None:
    gw, _ = scripted_gateway(["x"])
    async with gw:
        with pytest.raises(ValueError, match="max_steps"):
            await run_tools(gw, messages=[], registry=bank([]), identity=TELLER, max_steps=0)
