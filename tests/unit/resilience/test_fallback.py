"""Fallback chains and last resorts, on the in-process `fake/` provider (no network).

The chain under test is `Fallback → Spy → Faults → Router → ProviderCall`, built here (not by
`Gateway`, whatever it wires by default) so each test sees exactly these pieces:
`Spy` records every alias attempt in order, `Faults` makes chosen aliases fail with chosen
errors before routing (for classes `fake/` cannot produce, or for an alias that was healthy).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import (
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ContentFilteredError,
    ContextLengthExceededError,
    GatewayError,
    ModelNotFoundError,
    ProviderServerError,
    RateLimitedError,
    RateLimitExceeded,
)
from gatewise.observability.incidents import IncidentRecorder
from gatewise.pipeline.core import Call, Handler, Identity, Middleware, build_chain
from gatewise.pipeline.provider_call import ProviderCall
from gatewise.pipeline.stream import ChunkStream
from gatewise.resilience.fallback import (
    CONTENT,
    CONTEXT,
    OUTAGE,
    RATE_LIMIT,
    FallbackMiddleware,
    classify,
    simplify,
)
from gatewise.routing.middleware import RouterMiddleware
from gatewise.storage.memory import MemoryKV
from gatewise.types.embeddings import EmbeddingResponse
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk
from gatewise.types.validation import chat_request_from_dict, embedding_request_from_dict

MODELS = {
    "primary": [{"model": "fake/echo"}],
    "down": [{"model": "fake/fail-500"}],
    "overloaded": [{"model": "fake/fail-529"}],
    "limited": [{"model": "fake/fail-429"}],
    "long": [{"model": "fake/fail-context"}],
    "badkey": [{"model": "fake/fail-401"}],
    "gone": [{"model": "fake/fail-404"}],
    "secondary": [{"model": "fake/echo"}],
    "big": [{"model": "fake/echo"}],
    "safe": [{"model": "fake/echo"}],
    "local": [{"model": "fake/echo"}],
}


class Faults:
    """Makes the aliases in `errors` fail before routing, as a whole alias would."""

    def __init__(self) -> None:
        self.errors: dict[str, Callable[[Call], GatewayError | None]] = {}

    async def __call__(self, call: Call, next: Handler) -> Any:
        make = self.errors.get(call.alias)
        err = make(call) if make is not None else None
        if err is not None:
            raise err
        return await next(call)


class Spy:
    def __init__(self) -> None:
        self.aliases: list[str] = []
        self.requests: list[Any] = []

    async def __call__(self, call: Call, next: Handler) -> Any:
        self.aliases.append(call.alias)
        self.requests.append(call.request)
        return await next(call)


class Rig:
    def __init__(self, router: dict[str, Any], store: MemoryKV | None = None,
                 extra: Sequence[Middleware] = ()) -> None:
        cfg, w = parse_config({"models": MODELS, "router": router})
        resolved = resolve_config(cfg, None, {}, w)
        self.faults = Faults()
        self.spy = Spy()
        self.incidents = IncidentRecorder()
        self.fallback = FallbackMiddleware(cfg.router, store=store, incidents=self.incidents)
        gw = Gateway(resolved, seed=1)  # for its router and provider pool
        self.run_chain = build_chain([self.fallback, *extra, self.spy, self.faults,
                                      RouterMiddleware(gw.router)], ProviderCall(gw.pool))

    async def run(self, model: str, prompt: str = "hi", *, identity: Identity | None = None,
                  deadline: float | None = None, **params: Any) -> tuple[Call, Any]:
        body = {"model": model, "messages": params.pop("messages", None)
                or [{"role": "user", "content": prompt}], **params}
        call = Call("chat", chat_request_from_dict(body), *([identity] if identity else []))
        call.deadline = deadline
        return call, await self.run_chain(call)

    async def fails(self, model: str, prompt: str = "hi", **params: Any) -> tuple[Call, GatewayError]:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], **params}
        call = Call("chat", chat_request_from_dict(body))
        with pytest.raises(GatewayError) as info:
            await self.run_chain(call)
        return call, info.value


def content(result: Any) -> str | None:
    assert isinstance(result, ChatCompletion)
    return result.choices[0].message.content


async def drain(result: Any) -> list[ChatCompletionChunk]:
    assert isinstance(result, ChunkStream)
    return [c async for c in result]


def failovers(call: Call) -> list[dict[str, Any]]:
    return [data for name, data in call.events if name == "failover"]


# -- happy path -----------------------------------------------------------------------------

async def test_a_healthy_alias_is_served_without_any_fallback_trace() -> None:
    rig = Rig({"fallbacks": {"primary": ["secondary"]}})
    call, out = await rig.run("primary", "ping")
    assert content(out) == "Hello! You said: ping"
    assert rig.spy.aliases == ["primary"]
    assert "x-gatewise-fallback" not in call.response_headers and failovers(call) == []
    assert call.deadline is not None  # the one deadline every attempt shares


# -- chains by error class ------------------------------------------------------------------

async def test_a_5xx_fails_over_along_the_chain_in_order() -> None:
    rig = Rig({"fallbacks": {"down": ["overloaded", "secondary", "big"]}})
    call, out = await rig.run("down", "ping")
    assert content(out) == "Hello! You said: ping"
    assert rig.spy.aliases == ["down", "overloaded", "secondary"]
    assert call.response_headers["x-gatewise-fallback"] == "secondary"
    assert call.response_headers["x-gatewise-deployment"] == "secondary:fake/echo"
    assert call.deployment is not None and call.deployment.alias == "secondary"
    assert call.alias == "secondary"
    assert failovers(call) == [
        {"alias": "down", "to": "overloaded", "deployment": "down:fake/fail-500",
         "error_type": "ProviderServerError", "attempts": 1, "reason": OUTAGE, "attempt": 1},
        {"alias": "overloaded", "to": "secondary", "deployment": "overloaded:fake/fail-529",
         "error_type": "ProviderOverloadedError", "attempts": 2, "reason": OUTAGE, "attempt": 2},
    ]
    assert [type(e).__name__ for e in call.failures] == ["ProviderServerError",
                                                        "ProviderOverloadedError"]
    assert rig.incidents.counter.get(
        ("failover", "down", "down:fake/fail-500", "ProviderServerError")) == 1


async def test_a_fallback_alias_with_its_own_chain_continues_there_first() -> None:
    rig = Rig({"fallbacks": {"down": ["overloaded", "big"], "overloaded": ["secondary"]}})
    _, out = await rig.run("down")
    assert content(out) == "Hello! You said: hi"
    assert rig.spy.aliases == ["down", "overloaded", "secondary"]


async def test_chains_of_the_alias_the_router_resolved_to_apply_too() -> None:
    async def rule(call: Call, next: Handler) -> Any:  # like a routing rule: only what was asked
        if call.alias == call.request.model == "primary":
            call.alias = "down"
        return await next(call)

    rig = Rig({"fallbacks": {"down": ["secondary"]}}, extra=[rule])
    call, _ = await rig.run("primary")
    assert rig.spy.aliases == ["down", "secondary"]
    assert failovers(call)[0]["alias"] == "down" and call.alias == "secondary"


async def test_embeddings_fail_over_too() -> None:
    rig = Rig({"fallbacks": {"primary": ["secondary"]}, "escalate": True})
    rig.faults.errors["primary"] = lambda c: ProviderServerError("down")
    call = Call("embed", embedding_request_from_dict({"model": "primary", "input": "a b"}))
    out = await rig.run_chain(call)
    assert isinstance(out, EmbeddingResponse) and rig.spy.aliases == ["primary", "secondary"]
    rig.faults.errors["secondary"] = lambda c: ProviderServerError("down")
    call = Call("embed", embedding_request_from_dict({"model": "primary", "input": "a b"}))
    with pytest.raises(AllTargetsFailedError):  # escalation is a chat answer: not for embeddings
        await rig.run_chain(call)


async def test_an_alias_is_never_tried_twice_even_when_chains_loop() -> None:
    rig = Rig({"fallbacks": {"down": ["overloaded"], "overloaded": ["down"]}})
    _, err = await rig.fails("down")
    assert rig.spy.aliases == ["down", "overloaded"]
    assert isinstance(err, AllTargetsFailedError)


async def test_context_too_long_goes_to_the_larger_window_before_general_fallbacks() -> None:
    rig = Rig({"context_window_fallbacks": {"long": ["big"]}, "fallbacks": {"long": ["secondary"]}})
    call, _ = await rig.run("long")
    assert rig.spy.aliases == ["long", "big"]
    assert failovers(call)[0]["reason"] == CONTEXT
    rig.faults.errors["big"] = lambda c: ContextLengthExceededError("still too long")
    await rig.run("long")
    assert rig.spy.aliases[2:] == ["long", "big", "secondary"]


async def test_content_filtered_uses_only_the_content_policy_chain() -> None:
    rig = Rig({"content_policy_fallbacks": {"primary": ["safe"]},
               "fallbacks": {"primary": ["secondary"]}})
    rig.faults.errors["primary"] = lambda c: ContentFilteredError("filtered")
    call, _ = await rig.run("primary")
    assert rig.spy.aliases == ["primary", "safe"]
    assert failovers(call)[0]["reason"] == CONTENT
    rig.faults.errors["safe"] = lambda c: ContentFilteredError("filtered too")
    _, err = await rig.fails("primary")
    assert rig.spy.aliases[2:] == ["primary", "safe"]  # never the general chain
    assert isinstance(err, AllTargetsFailedError) and isinstance(err.errors[-1], ContentFilteredError)


async def test_content_filtered_without_a_policy_chain_does_not_fail_over() -> None:
    rig = Rig({"fallbacks": {"primary": ["secondary"]}})
    rig.faults.errors["primary"] = lambda c: ContentFilteredError("filtered")
    _, err = await rig.fails("primary")
    assert isinstance(err, ContentFilteredError) and rig.spy.aliases == ["primary"]


async def test_rate_limited_goes_to_the_local_model_before_the_general_chain() -> None:
    rig = Rig({"rate_limit_fallback": "local", "fallbacks": {"limited": ["secondary"]}})
    call, _ = await rig.run("limited")
    assert rig.spy.aliases == ["limited", "local"]
    assert call.response_headers["x-gatewise-fallback"] == "local"
    assert failovers(call)[0]["reason"] == RATE_LIMIT
    rig.faults.errors["local"] = lambda c: ProviderServerError("local model crashed")
    await rig.run("limited")
    assert rig.spy.aliases[2:] == ["limited", "local", "secondary"]


async def test_rate_limit_fallback_needs_no_chain_for_the_alias() -> None:
    rig = Rig({"rate_limit_fallback": "local"})
    await rig.run("limited")
    assert rig.spy.aliases == ["limited", "local"]
    _, err = await rig.fails("down")  # not rate limited: no escape hatch
    assert isinstance(err, ProviderServerError)


async def test_every_deployment_rate_limited_counts_as_rate_limited() -> None:
    rig = Rig({"rate_limit_fallback": "local", "fallbacks": {"primary": ["secondary"]}})
    rig.faults.errors["primary"] = lambda c: AllTargetsFailedError(
        "all deployments limited", [RateLimitedError("a"), RateLimitedError("b")])
    await rig.run("primary")
    assert rig.spy.aliases == ["primary", "local"]


async def test_rate_limited_without_rate_limit_fallback_uses_the_general_chain() -> None:
    rig = Rig({"fallbacks": {"limited": ["secondary"]}})
    await rig.run("limited")
    assert rig.spy.aliases == ["limited", "secondary"]


async def test_an_open_circuit_fails_over() -> None:
    rig = Rig({"fallbacks": {"primary": ["secondary"]}})
    rig.faults.errors["primary"] = lambda c: CircuitOpenError("breaker open")
    call, _ = await rig.run("primary")
    assert rig.spy.aliases == ["primary", "secondary"]
    assert failovers(call)[0]["deployment"] is None  # rejected before any deployment


@pytest.mark.parametrize(("model", "error"), [("badkey", AuthenticationError),
                                              ("gone", ModelNotFoundError)])
async def test_caller_errors_reach_the_upstream_once_and_never_fail_over(
        model: str, error: type[GatewayError]) -> None:
    rig = Rig({"fallbacks": {model: ["secondary"]}, "escalate": True, "stale_on_outage": True,
               "simplify_on_failure": True})
    call, err = await rig.fails(model)
    assert type(err) is error
    assert rig.spy.aliases == [model] and call.attempts == 1
    assert failovers(call) == [] and "x-gatewise-fallback" not in call.response_headers


async def test_plain_bad_requests_and_gateway_policy_errors_never_fail_over() -> None:
    rig = Rig({"fallbacks": {"primary": ["secondary"]}, "escalate": True})
    rig.faults.errors["primary"] = lambda c: BadRequestError("bad 'messages'")
    _, err = await rig.fails("primary")
    assert isinstance(err, BadRequestError)
    rig.faults.errors["primary"] = lambda c: RateLimitExceeded("your key's limit")
    _, err = await rig.fails("primary")
    assert isinstance(err, RateLimitExceeded) and rig.spy.aliases == ["primary", "primary"]


async def test_a_single_failed_alias_raises_its_own_error() -> None:
    rig = Rig({})
    _, err = await rig.fails("limited")
    assert isinstance(err, RateLimitedError) and err.retry_after == 1.0


async def test_when_every_alias_fails_the_error_carries_each_attempt() -> None:
    rig = Rig({"fallbacks": {"down": ["overloaded", "limited"]}})
    call, err = await rig.fails("down")
    assert isinstance(err, AllTargetsFailedError)
    assert [type(e).__name__ for e in err.errors] == [
        "ProviderServerError", "ProviderOverloadedError", "RateLimitedError"]
    assert err.status == 429 and err.code == "rate_limit_exceeded"  # the last error's
    assert "down: ProviderServerError" in err.message and "limited: RateLimitedError" in err.message
    assert call.failures == err.errors


async def test_an_expired_deadline_stops_failing_over() -> None:
    rig = Rig({"fallbacks": {"down": ["secondary"]}})
    with pytest.raises(ProviderServerError):
        await rig.run("down", deadline=time.perf_counter() - 1)
    assert rig.spy.aliases == ["down"]


async def test_streams_fail_over_before_the_first_chunk() -> None:
    rig = Rig({"fallbacks": {"down": ["secondary"]}})
    call, out = await rig.run("down", "stream me", stream=True)
    chunks = await drain(out)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello! You said: stream me"
    assert {c.model for c in chunks} == {"echo"}
    assert call.response_headers["x-gatewise-fallback"] == "secondary"
    assert call.deployment is not None and call.deployment.alias == "secondary"


async def test_failovers_are_logged_as_incidents(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig({"fallbacks": {"down": ["secondary"]}})
    with caplog.at_level(logging.WARNING, logger="gatewise.incident"):
        call, _ = await rig.run("down")
    rec = next(r for r in caplog.records if r.name == "gatewise.incident")
    assert rec.getMessage() == "failover"
    assert (rec.__dict__["alias"], rec.__dict__["to"], rec.__dict__["error_type"]) == \
        ("down", "secondary", "ProviderServerError")
    assert rec.__dict__["request_id"] == call.request_id


# -- stale answers --------------------------------------------------------------------------

class RecordingKV(MemoryKV):
    def __init__(self) -> None:
        super().__init__()
        self.ttls: list[float | None] = []

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.ttls.append(ttl)
        await super().set(key, value, ttl)


async def test_an_outage_serves_the_last_good_answer_to_the_same_request_marked_stale() -> None:
    store = RecordingKV()
    rig = Rig({"stale_on_outage": True, "stale_ttl_s": 60, "fallbacks": {"primary": ["secondary"]}},
              store=store)
    _, good = await rig.run("primary", "what time is it", temperature=0.5)
    assert store.ttls == [60]
    rig.faults.errors["primary"] = rig.faults.errors["secondary"] = \
        lambda c: ProviderServerError("down")
    call, out = await rig.run("primary", "what time is it", temperature=0.5, user="someone-else")
    assert isinstance(out, ChatCompletion) and out == good
    assert call.response_headers["x-gatewise-stale"] == "true"
    assert call.deployment is None and "x-gatewise-deployment" not in call.response_headers
    assert [n for n, _ in call.events][-1] == "stale_answer"
    assert store.ttls == [60]  # a stale answer is not stored again


async def test_a_stale_answer_is_only_for_the_same_request_and_tenant() -> None:
    rig = Rig({"stale_on_outage": True})
    await rig.run("primary", "question")
    rig.faults.errors["primary"] = lambda c: ProviderServerError("down")
    with pytest.raises(ProviderServerError):
        await rig.run("primary", "another question")
    with pytest.raises(ProviderServerError):
        await rig.run("primary", "question", temperature=1.0)
    with pytest.raises(ProviderServerError):
        await rig.run("primary", "question", identity=Identity(tenant="acme"))
    _, out = await rig.run("primary", "question")
    assert content(out) == "Hello! You said: question"


async def test_a_stream_gets_the_stale_answer_as_a_stream() -> None:
    rig = Rig({"stale_on_outage": True})
    await rig.run("primary", "question")
    rig.faults.errors["primary"] = lambda c: ProviderServerError("down")
    call, out = await rig.run("primary", "question", stream=True,
                              stream_options={"include_usage": True})
    chunks = await drain(out)
    assert chunks[0].choices[0].delta.content == "Hello! You said: question"
    assert chunks[1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert call.response_headers["x-gatewise-stale"] == "true"


async def test_streamed_answers_are_not_stored_and_answers_come_from_fallbacks_too() -> None:
    rig = Rig({"stale_on_outage": True, "fallbacks": {"down": ["secondary"]}})
    await drain((await rig.run("primary", "q", stream=True))[1])
    rig.faults.errors["primary"] = lambda c: ProviderServerError("down")
    with pytest.raises(ProviderServerError):
        await rig.run("primary", "q")
    await rig.run("down", "q")  # served by 'secondary', stored under what was asked: 'down'
    rig.faults.errors["secondary"] = lambda c: ProviderServerError("down")
    call, out = await rig.run("down", "q")
    assert content(out) == "Hello! You said: q" and call.response_headers["x-gatewise-stale"]


# -- simplified prompt ----------------------------------------------------------------------

HISTORY = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "first"},
    {"role": "assistant", "content": "answer"},
    {"role": "user", "content": "second"},
]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


async def test_simplified_prompt_is_the_last_try_on_the_original_alias() -> None:
    rig = Rig({"simplify_on_failure": True, "fallbacks": {"primary": ["secondary"]}})
    too_long = lambda c: ContextLengthExceededError("too long") if len(  # noqa: E731
        c.chat_request.messages) > 2 or c.chat_request.tools else None
    rig.faults.errors["primary"] = rig.faults.errors["secondary"] = too_long
    call, out = await rig.run("primary", messages=HISTORY, tools=TOOLS,
                              response_format={"type": "json_object"})
    assert content(out) == "Hello! You said: second"
    assert rig.spy.aliases == ["primary", "secondary", "primary"]
    sent = rig.spy.requests[-1]
    assert [type(m).__name__ for m in sent.messages] == ["SystemMessage", "UserMessage"]
    assert sent.tools is None and sent.response_format is None
    assert call.response_headers["x-gatewise-simplified"] == "true"
    assert call.chat_request.tools is not None  # the call's own request is restored
    assert [n for n, _ in call.events].count("simplified_prompt") == 1


def test_simplify_keeps_system_and_the_last_user_turn_or_says_there_is_nothing_to_do() -> None:
    req = chat_request_from_dict({"model": "m", "messages": HISTORY, "tools": TOOLS,
                                  "tool_choice": "auto", "temperature": 0.2})
    simple = simplify(req)
    assert simple is not None and simple.temperature == 0.2 and simple.tool_choice is None
    assert [type(m).__name__ for m in simple.messages] == ["SystemMessage", "UserMessage"]
    assert simplify(simple) is None


async def test_a_failed_simplified_try_is_one_more_attempt_in_the_error() -> None:
    rig = Rig({"simplify_on_failure": True})
    call = Call("chat", chat_request_from_dict({"model": "down", "messages": HISTORY}))
    with pytest.raises(AllTargetsFailedError) as info:
        await rig.run_chain(call)
    assert [type(e).__name__ for e in info.value.errors] == ["ProviderServerError"] * 2
    assert rig.spy.aliases == ["down", "down"]


async def test_nothing_to_simplify_means_no_extra_attempt() -> None:
    rig = Rig({"simplify_on_failure": True})
    _, err = await rig.fails("down")
    assert isinstance(err, ProviderServerError) and rig.spy.aliases == ["down"]


# -- escalation -----------------------------------------------------------------------------

async def test_escalation_returns_a_structured_tool_call_with_every_attempt() -> None:
    rig = Rig({"escalate": True, "fallbacks": {"down": ["limited"]}})
    call, out = await rig.run("down")
    assert isinstance(out, ChatCompletion)
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    tool = (choice.message.tool_calls or [])[0]
    assert tool.function.name == "escalate_to_human"
    args = json.loads(tool.function.arguments)
    assert args["error_type"] == "RateLimitedError" and "down" in args["reason"]
    assert args["attempts"] == [
        {"alias": "down", "deployment": "down:fake/fail-500", "error_type": "ProviderServerError",
         "message": "fake error (fail-500): 500 server error"},
        {"alias": "limited", "deployment": "limited:fake/fail-429",
         "error_type": "RateLimitedError", "message": "fake error (fail-429): 429 rate limited"},
    ]
    assert call.response_headers["x-gatewise-escalated"] == "true"
    assert call.deployment is None
    name, data = call.events[-1]
    assert name == "escalation" and data["deployment"] == "limited:fake/fail-429"
    assert rig.incidents.counter.get(
        ("escalation", "limited", "limited:fake/fail-429", "RateLimitedError")) == 1


async def test_a_streaming_call_gets_the_escalation_as_a_stream() -> None:
    rig = Rig({"escalate": True})
    call, out = await rig.run("down", stream=True)
    chunks = await drain(out)
    delta = chunks[0].choices[0].delta
    assert delta.role == "assistant" and delta.tool_calls is not None
    fn = delta.tool_calls[0].function
    assert fn is not None and fn.name == "escalate_to_human"
    assert json.loads(fn.arguments or "")["attempts"][0]["alias"] == "down"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert call.response_headers["x-gatewise-escalated"] == "true"


async def test_last_resorts_run_in_order_stale_then_simplified_then_escalation() -> None:
    rig = Rig({"stale_on_outage": True, "simplify_on_failure": True, "escalate": True})
    await rig.run("primary", messages=HISTORY)
    rig.faults.errors["primary"] = lambda c: ProviderServerError("down")
    call, _ = await rig.run("primary", messages=HISTORY)
    assert "x-gatewise-stale" in call.response_headers and rig.spy.aliases == ["primary"] * 2
    call, _ = await rig.run("primary", messages=[*HISTORY, {"role": "assistant", "content": "x"},
                                                 {"role": "user", "content": "third"}])
    assert "x-gatewise-escalated" in call.response_headers  # no stale answer; simplified failed
    assert [n for n, _ in call.events][-2:] == ["simplified_prompt", "escalation"]


def test_classify_maps_errors_to_failover_classes() -> None:
    assert classify(ContextLengthExceededError("x")) == CONTEXT
    assert classify(ContentFilteredError("x")) == CONTENT
    assert classify(RateLimitedError("x")) == RATE_LIMIT
    assert classify(CircuitOpenError("x")) == OUTAGE
    assert classify(AllTargetsFailedError("x", [RateLimitedError("a"), ProviderServerError("b")])) \
        == OUTAGE
    assert classify(BadRequestError("x")) is None
    assert classify(AuthenticationError("x")) is None
    assert classify(RateLimitExceeded("x")) is None
