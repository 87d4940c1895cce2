"""The library side of the live steps contract (`on_step=`, `gatewise.pipeline.steps`), on the
shipped in-process fake provider: the same steps the server frames, heard as they happen."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import ProviderServerError
from gatewise.orchestration.parallel import Branches
from gatewise.pipeline.core import Call
from gatewise.pipeline.steps import StepRelay, attempt_reason
from gatewise.types.validation import chat_request_from_dict


def _gateway() -> Gateway:
    cfg, w = parse_config({"models": {"echo": [{"model": "fake/echo"}],
                                      "down": [{"model": "fake/fail-500"}],
                                      "shaky": [{"model": "fake/fail-500"}]},
                           "default_model": "echo",
                           "router": {"retry": {"max_retries": 1, "base_delay_s": 0.0},
                                      "breaker": {"enabled": False},
                                      "fallbacks": {"shaky": ["echo"]}},
                           "orchestrations": {
                               "both": {"mode": "parallel", "models": ["echo", "down"]},
                               "vote": {"mode": "consensus", "models": ["echo", "echo"],
                                        "judge": "echo"}}})
    return Gateway(resolve_config(cfg, None, {}, w))


class Heard:
    def __init__(self) -> None:
        self.steps: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        self.steps.append((name, data))

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.steps]

    def first(self, name: str) -> dict[str, Any]:
        return next(d for n, d in self.steps if n == name)


async def test_chat_hears_route_attempt_and_done_with_the_real_usage() -> None:
    heard = Heard()
    async with _gateway() as gw:
        r = await gw.chat("hello world", on_step=heard)
    assert heard.names == ["route", "attempt", "done"]
    done = heard.first("done")
    assert r.usage is not None
    assert done["usage"] == {"prompt_tokens": r.usage.prompt_tokens,
                             "completion_tokens": r.usage.completion_tokens, "cached_tokens": 0}
    assert done["deployment"] == r.deployment == "echo:fake/echo"
    assert done["finish_reason"] == "stop" and done["provider"] == "fake"
    assert all(d["t_ms"] >= 0 for _, d in heard.steps)


async def test_stream_hears_first_token_then_done_as_the_chunks_pass() -> None:
    heard = Heard()
    async with _gateway() as gw:
        s = gw.stream("one two", on_step=heard)
        seen_at_first_chunk: list[str] = []
        async for _ in s:
            if not seen_at_first_chunk:
                seen_at_first_chunk = list(heard.names)
    assert seen_at_first_chunk[:2] == ["route", "attempt"] and "done" not in seen_at_first_chunk
    assert heard.names[-2:] == ["first_token", "done"]
    assert heard.first("first_token")["ttft_ms"] == heard.first("done")["ttft_ms"]


async def test_a_failed_call_ends_with_an_error_step_after_each_attempt_said_what_came_next(
        ) -> None:
    heard = Heard()
    async with _gateway() as gw:
        with pytest.raises(ProviderServerError):
            await gw.chat("x", model="down", on_step=heard)
    assert [n for n in heard.names if n in ("attempt", "attempt_failed", "retry", "error")] == [
        "attempt", "attempt_failed", "retry", "attempt", "attempt_failed", "error"]
    assert [d["next"] for n, d in heard.steps if n == "attempt_failed"] == ["retry", "error"]
    assert heard.first("error")["type"] == "ProviderServerError"


async def test_a_fallback_alias_is_an_attempt_whose_reason_is_fallback() -> None:
    heard = Heard()
    async with _gateway() as gw:
        r = await gw.chat("x", model="shaky", on_step=heard)
    assert r.content == "Hello! You said: x"
    reasons = [d["reason"] for n, d in heard.steps if n == "attempt"]
    assert reasons == ["first", "retry", "fallback"]
    assert heard.names[-1] == "done"


async def test_without_a_listener_the_timeline_only_steps_are_not_built() -> None:
    async with _gateway() as gw:
        call = Call("chat", chat_request_from_dict({"model": "echo", "messages": [
            {"role": "user", "content": "hi"}]}))
        await gw.run(call)
    names = [n for n, _ in call.events]
    assert "route" in names
    assert not {"attempt", "done", "first_token"} & set(names)
    assert all("t_ms" not in d for _, d in call.events)


SHOWN = ("attempt", "attempt_failed", "retry", "first_token", "done", "error")


async def test_an_orchestrations_branches_are_heard_each_marked_with_its_branch() -> None:
    heard = Heard()
    async with _gateway() as gw:
        r = await gw.chat("fan out", model="both", on_step=heard)
    branches: dict[int, list[str]] = {}
    for name, data in heard.steps:
        if "branch" in data and name in SHOWN:
            branches.setdefault(data["branch"]["index"], []).append(name)
    assert branches == {0: ["attempt", "first_token", "done"],
                        1: ["attempt", "attempt_failed", "retry", "attempt", "attempt_failed",
                            "error"]}
    models = {d["branch"]["index"]: d["branch"]["model"] for _, d in heard.steps if "branch" in d}
    assert models == {0: "echo", 1: "down"}
    # Each branch's failed attempts say what came of them, though both branches ran at once.
    assert [d["next"] for n, d in heard.steps if n == "attempt_failed"] == ["retry", "error"]
    done = next(d for n, d in heard.steps if n == "done" and "branch" in d)
    assert done["deployment"] == "echo:fake/echo" and done["cost_usd"] is not None
    assert done["latency_ms"] > 0 and done["ttft_ms"] == done["latency_ms"]
    err = next(d for n, d in heard.steps if n == "error" and "branch" in d)
    assert err["type"] == "ProviderServerError" and err["branch"]["model"] == "down"
    # The call's own `done` comes last, unmarked, with the usage of every branch.
    assert heard.names[-1] == "done" and "branch" not in heard.steps[-1][1]
    assert r.usage is not None and heard.steps[-1][1]["usage"]["prompt_tokens"] == \
        r.usage.prompt_tokens == done["usage"]["prompt_tokens"]
    times = [d["t_ms"] for _, d in heard.steps]
    assert times == sorted(times)  # every step on the call's own clock


async def test_a_judges_call_is_a_branch_marked_as_the_judge() -> None:
    heard = Heard()
    async with _gateway() as gw:
        await gw.chat("vote", model="vote", on_step=heard)
    attempts = sorted((d["branch"] for n, d in heard.steps if n == "attempt"),
                      key=lambda b: b["index"])
    assert attempts == [{"index": 0, "model": "echo"}, {"index": 1, "model": "echo"},
                        {"index": 2, "model": "echo", "judge": True}]


async def test_without_a_listener_no_branch_step_is_built() -> None:
    branch_calls: list[Call] = []
    req = chat_request_from_dict({"model": "echo", "messages": [
        {"role": "user", "content": "hi"}]})
    async with _gateway() as gw:
        async def run(c: Call) -> Any:
            branch_calls.append(c)
            return await gw.run(c)

        for parent in (Call("chat", req), Call("chat", req)):
            if branch_calls:
                parent.listener = Heard()  # the second parent has one: the control
            await Branches(run, parent=parent).fan_out(req, ["echo", "down"])
        whole = Call("chat", chat_request_from_dict({"model": "both", "messages": [
            {"role": "user", "content": "hi"}]}))
        await gw.run(whole)
    unheard, heard = branch_calls[:2], branch_calls[2:]
    assert [c.listener for c in unheard] == [None, None]
    assert not {"attempt", "done", "error"} & {n for c in unheard for n, _ in c.events}
    assert all(c.listener is not None for c in heard)
    assert {"attempt", "done", "error"} <= {n for c in heard for n, _ in c.events}
    assert not any("branch" in d or "t_ms" in d for _, d in whole.events)


def test_a_listener_that_raises_never_fails_the_call(caplog: pytest.LogCaptureFixture) -> None:
    call = Call("chat", chat_request_from_dict({"model": "m", "messages": [
        {"role": "user", "content": "hi"}]}))

    def broken(name: str, data: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    call.listener = broken
    call.event("route", deployment="d")
    assert call.events[0][0] == "route" and "step listener failed" in caplog.text


def test_the_relay_holds_a_failed_attempt_until_the_next_step_names_what_came_of_it() -> None:
    heard = Heard()
    relay = StepRelay(heard)
    relay("attempt_failed", {"deployment": "a"})
    assert heard.steps == []
    relay("failover", {"to": "b", "reason": "outage"})  # the fallback middleware's
    assert heard.steps[0] == ("attempt_failed", {"deployment": "a", "next": "fallback"})
    relay("attempt_failed", {"deployment": "b"})
    relay("failover", {"to": "c", "error": "X"})  # the router's: another deployment
    assert heard.steps[-2] == ("attempt_failed", {"deployment": "b", "next": "failover"})


def test_an_attempts_reason_is_the_latest_decision_since_the_last_attempt() -> None:
    call = Call("chat", chat_request_from_dict({"model": "m", "messages": [
        {"role": "user", "content": "hi"}]}))
    assert attempt_reason(call, 1) == "first"
    call.events += [("attempt", {}), ("retry", {}), ("hedge", {})]
    assert attempt_reason(call, 2) == "hedge"
    call.events += [("attempt", {}), ("failover", {"to": "d2", "error": "E"})]
    assert attempt_reason(call, 3) == "failover"
