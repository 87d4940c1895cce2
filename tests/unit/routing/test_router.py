"""The router's filters (problems, capabilities, breaker, cool-downs) and alias resolution
(rules, steps with a local fallback, complexity)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from gatewise.config.loader import ResolvedConfig
from gatewise.config.schema import RoutingRule
from gatewise.errors import (
    CircuitOpenError,
    ConfigError,
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderServerError,
)
from gatewise.pipeline.core import Call
from gatewise.providers.base import Capabilities
from gatewise.providers.deployment import Deployment
from gatewise.providers.pool import ProviderPool
from gatewise.routing.capabilities import CapabilityLookup
from gatewise.routing.router import Router, find_local_alias
from gatewise.types.validation import embedding_request_from_dict

from .conftest import Clock, chat, fakes, ids, resolved

LOCAL = [{"model": "llamacpp/smollm2-135m", "id": "local"}]
IMAGE = [{"type": "text", "text": "what is this?"},
         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
SCHEMA = {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}}


def _caps(table: dict[str, Capabilities]) -> tuple[Counter[str], CapabilityLookup]:
    asked: Counter[str] = Counter()

    def lookup(dep: Deployment) -> Capabilities:
        asked[dep.id] += 1
        return table.get(dep.id, Capabilities())

    return asked, lookup


def _picks(r: Router, call_factory: Callable[[], Call], n: int = 60) -> set[str]:
    out = set()
    for _ in range(n):
        call = call_factory()
        out.add(r.choose(r.candidates("m"), r.needs(call)).id)
    return out


# -- capabilities ----------------------------------------------------------------------------

def test_a_tools_request_never_goes_to_a_deployment_without_tools() -> None:
    _, lookup = _caps({"plain": Capabilities(tools=False)})
    r = Router(resolved({"m": fakes("plain", "tooled")}), seed=1, capabilities=lookup)
    assert _picks(r, lambda: chat("find it", tools=TOOLS)) == {"tooled"}
    assert _picks(r, lambda: chat("just talk")) == {"plain", "tooled"}


def test_an_image_never_goes_to_a_text_only_deployment() -> None:
    _, lookup = _caps({"eyes": Capabilities(vision=True)})
    r = Router(resolved({"m": fakes("text", "eyes")}), seed=1, capabilities=lookup)
    assert _picks(r, lambda: chat(IMAGE)) == {"eyes"}


def test_a_json_schema_request_needs_structured_output() -> None:
    _, lookup = _caps({"loose": Capabilities(json_schema=False)})
    r = Router(resolved({"m": fakes("loose", "strict")}), seed=1, capabilities=lookup)
    assert _picks(r, lambda: chat("give json", response_format=SCHEMA)) == {"strict"}


def test_a_long_prompt_never_goes_to_a_small_context_window() -> None:
    _, lookup = _caps({"small": Capabilities(context_window=2048),
                       "big": Capabilities(context_window=128_000)})
    r = Router(resolved({"m": fakes("small", "big")}), seed=1, capabilities=lookup)
    long_text = "word " * 4000  # ~20 KB, ~5,000 tokens
    assert _picks(r, lambda: chat(long_text)) == {"big"}
    assert _picks(r, lambda: chat("short")) == {"small", "big"}
    # the caller's output cap counts too: 1,500 prompt tokens + 1,000 out do not fit in 2,048
    assert _picks(r, lambda: chat("word " * 1200, max_tokens=1000)) == {"big"}


def test_no_capable_deployment_is_a_clear_error() -> None:
    _, lookup = _caps({"a": Capabilities(tools=False, context_window=1000)})
    r = Router(resolved({"m": fakes("a")}), capabilities=lookup)
    with pytest.raises(InvalidRequestError, match="'m' supports tools") as info:
        r.choose(r.candidates("m"), r.needs(chat("x", tools=TOOLS)))
    assert info.value.param == "tools"
    # too long for every window: the error fallbacks treat as "use a larger context window"
    with pytest.raises(ContextLengthExceededError, match="largest 1000"):
        r.choose(r.candidates("m"), r.needs(chat("word " * 2000)))


def test_capabilities_are_looked_up_once_per_deployment_and_only_when_needed() -> None:
    asked, lookup = _caps({})
    r = Router(resolved({"m": fakes("a", "b")}), seed=1, capabilities=lookup)
    for _ in range(20):
        r.choose(r.candidates("m"), r.needs(chat("hello")))
    assert asked == {}  # a short plain prompt fits every chat model
    for _ in range(20):
        r.choose(r.candidates("m"), r.needs(chat("x", tools=TOOLS)))
    assert asked == {"a": 1, "b": 1}


def test_without_a_lookup_every_deployment_is_assumed_capable() -> None:
    r = Router(resolved({"m": fakes("a")}))
    assert r.choose(r.candidates("m"), r.needs(chat(IMAGE, tools=TOOLS))).id == "a"


# -- availability (breaker hook), cool-downs, config problems ----------------------------------

def test_unavailable_deployments_are_skipped_and_none_left_names_the_alias() -> None:
    broken: set[str] = {"a"}
    r = Router(resolved({"m": fakes("a", "b")}), seed=1, available=lambda d: d.id not in broken)
    assert _picks(r, chat) == {"b"}
    broken.add("b")
    with pytest.raises(CircuitOpenError, match="'m'"):
        r.choose(r.candidates("m"))
    r.available = lambda d: True  # the breaker can also be plugged in after construction
    assert _picks(r, chat) == {"a", "b"}


def test_a_failed_deployment_sits_out_its_cooldown_then_returns() -> None:
    clock = Clock()
    r = Router(resolved({"m": fakes("a", "b")}, cooldown_s=5), seed=1, clock=clock)
    r.tracker.failed(r.tracker.started("a"), ProviderServerError("x"))
    assert _picks(r, chat) == {"b"}
    clock.advance(5.01)
    assert _picks(r, chat) == {"a", "b"}


def test_all_cooling_down_raises_so_fallbacks_take_over() -> None:
    r = Router(resolved({"m": fakes("a", "b")}, cooldown_s=5), clock=Clock())
    for d in ("a", "b"):
        r.tracker.failed(r.tracker.started(d), ProviderServerError("x"))
    with pytest.raises(CircuitOpenError, match="'m' is cooling down") as refused:
        r.choose(r.candidates("m"))
    assert refused.value.retry_after == pytest.approx(5.0)  # the soonest one back


def test_every_breaker_open_says_when_the_first_probe_may_go() -> None:
    waits = {"a": 7.5, "b": 0.4}
    r = Router(resolved({"m": fakes("a", "b"), "one": fakes("c")}), seed=1,
               available=lambda d: False, retry_in=lambda d: waits.get(d.id, 2.0))
    with pytest.raises(CircuitOpenError, match=r"next probe in 0\.4s") as refused:
        r.choose(r.candidates("m"))
    assert refused.value.retry_after == pytest.approx(0.4)
    with pytest.raises(CircuitOpenError) as refused:
        r.choose(r.candidates("one"))  # a one-deployment alias: its own breaker's time
    assert refused.value.retry_after == pytest.approx(2.0)
    r.retry_in = None  # no hook: the time is unknown (the server still sends Retry-After: 1)
    with pytest.raises(CircuitOpenError) as refused:
        r.choose(r.candidates("m"))
    assert refused.value.retry_after is None


def test_a_single_deployment_alias_ignores_cooldowns() -> None:
    r = Router(resolved({"m": fakes("a")}, cooldown_s=5), clock=Clock())
    r.tracker.failed(r.tracker.started("a"), ProviderServerError("x"))
    assert r.choose(r.candidates("m")).id == "a"  # the breaker, not one blip, stops it


def test_excluded_deployments_are_not_chosen_again() -> None:
    r = Router(resolved({"m": fakes("a", "b", "c")}), seed=1)
    assert {r.choose(r.candidates("m"), exclude={"a", "c"}).id for _ in range(20)} == {"b"}
    with pytest.raises(CircuitOpenError, match="already tried"):
        r.choose(r.candidates("m"), exclude={"a", "b", "c"})


def test_deployments_with_config_problems_are_never_chosen() -> None:
    cfg = resolved({"m": [{"model": "openai/gpt-4o"}, *fakes("ok")]})  # no OpenAI key
    r = Router(cfg, seed=1)
    assert _picks(r, chat) == {"ok"}
    with pytest.raises(ConfigError, match="no API key"):
        r.choose(cfg.aliases["m"][:1])


# -- rules --------------------------------------------------------------------------------------

def _rules_router() -> Router:
    return Router(resolved(
        {"m": fakes("m"), "gold": fakes("gold"), "eu": fakes("eu"), "priv": fakes("priv")},
        rules=[{"alias": "priv", "models": ["m"], "metadata": {"sensitivity": "high"}},
               {"alias": "gold", "metadata": {"tier": "gold"}},
               {"alias": "eu", "headers": {"X-Region": "eu"}},
               {"alias": "eu", "metadata": {"residency": "*"}}]))


@pytest.mark.parametrize(("call", "alias"), [
    (chat(metadata={"tier": "gold"}), "gold"),
    (chat(metadata={"tier": "silver"}), "m"),
    (chat(headers={"x-region": "eu"}), "eu"),
    (chat(headers={"X-REGION": "us"}), "m"),
    (chat(metadata={"residency": "anything"}), "eu"),
    (chat(metadata={"sensitivity": "high", "tier": "gold"}), "priv"),  # first match wins
    (chat(model="gold", metadata={"sensitivity": "high"}), "gold"),  # rule limited to 'm'
    (chat(), "m"),
])
def test_rules_match_metadata_headers_and_the_requested_alias(call: Call, alias: str) -> None:
    r = _rules_router()
    assert r.resolve(call) == alias
    assert call.alias == alias


def test_a_matching_rule_is_recorded_on_the_call() -> None:
    call = chat(metadata={"tier": "gold"})
    _rules_router().resolve(call)
    assert ("rule", {"index": 1, "alias": "gold"}) in call.events


# -- steps --------------------------------------------------------------------------------------

def _steps_router(available: Callable[[Deployment], bool] | None = None) -> Router:
    return Router(resolved({"m": fakes("m"), "fast": fakes("fast"), "smart": fakes("smart"),
                            "local": LOCAL},
                           steps={"route": "fast", "answer": "smart"}), available=available)


def test_a_named_step_picks_its_alias_from_metadata_or_header() -> None:
    r = _steps_router()
    assert r.resolve(chat(metadata={"step": "route"})) == "fast"
    assert r.resolve(chat(headers={"x-gatewise-step": "answer"})) == "smart"
    assert r.resolve(chat(metadata={"step": "unknown"})) == "m"


def test_a_step_whose_alias_cannot_serve_falls_back_to_the_local_model() -> None:
    down = {"smart"}
    r = _steps_router(available=lambda d: d.id not in down)
    call = chat(metadata={"step": "answer"})
    assert r.resolve(call, r.needs(call)) == "local"
    assert ("step", {"step": "answer", "alias": "local", "local_fallback": True}) in call.events
    down.clear()
    assert r.resolve(chat(metadata={"step": "answer"})) == "smart"


def test_the_local_alias_is_found_by_its_in_process_deployment() -> None:
    assert find_local_alias(resolved({"m": fakes("m"), "tiny": LOCAL}).aliases) == "tiny"
    assert find_local_alias(resolved({"m": fakes("m")}).aliases) is None


# -- complexity ---------------------------------------------------------------------------------

def _auto_router(**tiers: str) -> Router:
    return Router(resolved({"s": fakes("s"), "md": fakes("md"), "l": fakes("l")},
                           complexity=tiers or {"small": "s", "medium": "md", "large": "l"}))


@pytest.mark.parametrize(("prompt", "alias", "tier"), [
    ("hi!", "s", "small"),
    ("Explain why the sky is blue and why sunsets are red.", "md", "medium"),
    ("Prove that the square root of 2 is irrational, then generalize the proof to any prime, "
     "step by step.", "l", "large"),
])
def test_auto_routes_by_complexity_and_says_so_in_a_header(prompt: str, alias: str, tier: str) -> None:
    r = _auto_router()
    call = chat(prompt, model="auto")
    assert r.resolve(call) == alias
    assert call.response_headers["x-gatewise-complexity"].startswith(f"{tier};score=")
    assert "auto" in r.aliases()


def test_an_unmapped_tier_borrows_the_next_larger_alias() -> None:
    r = _auto_router(medium="md", large="l")
    assert r.resolve(chat("hi", model="auto")) == "md"
    r = _auto_router(small="s")
    assert r.resolve(chat("Design and implement a distributed lock, step by step.",
                          model="auto")) == "s"


def test_an_alias_named_auto_is_served_as_configured() -> None:
    r = Router(resolved({"auto": fakes("a"), "s": fakes("s")}, complexity={"small": "s"}))
    call = chat("hi", model="auto")
    assert r.resolve(call) == "auto" and "x-gatewise-complexity" not in call.response_headers


def test_embeddings_are_not_re_routed() -> None:
    r = _steps_router()
    call = Call("embed", embedding_request_from_dict({"model": "m", "input": "x"}))
    assert r.resolve(call, r.needs(call)) == "m"
    assert ids(r.candidates("m")) == ["m"]


def test_capabilities_come_from_the_provider_clients_adapters() -> None:
    pool = ProviderPool()
    cfg = resolved({"m": [{"model": "openai/gpt-3.5-turbo", "api_key": "k", "id": "old"},
                          {"model": "openai/gpt-4o", "api_key": "k", "id": "omni"}]})
    r = Router(cfg, seed=1, capabilities=lambda d: pool.client_for(d.target).capabilities(d.target))
    assert _picks(r, lambda: chat(IMAGE)) == {"omni"}


def test_a_failing_capability_lookup_assumes_capable_rather_than_failing_the_request() -> None:
    def broken(dep: Deployment) -> Capabilities:
        raise ImportError("optional extra not installed")

    r = Router(resolved({"m": fakes("a")}), capabilities=broken)
    assert r.choose(r.candidates("m"), r.needs(chat(IMAGE, tools=TOOLS))).id == "a"


def _with_router(cfg: ResolvedConfig, **changes: Any) -> ResolvedConfig:
    """The same resolved config with router settings the loader would check separately."""
    cfg.config = msgspec.structs.replace(
        cfg.config, router=msgspec.structs.replace(cfg.config.router, **changes))
    return cfg


def test_a_rule_or_a_step_can_hand_the_choice_to_the_complexity_scorer() -> None:
    cfg = _with_router(
        resolved({"m": fakes("m"), "s": fakes("s"), "l": fakes("l"), "local": LOCAL},
                 complexity={"small": "s", "large": "l"}),
        rules=[RoutingRule(alias="auto", metadata={"smart": "yes"})], steps={"answer": "auto"})
    r = Router(cfg)
    call = chat("thanks!", metadata={"smart": "yes"})
    assert r.resolve(call) == "s" and "x-gatewise-complexity" in call.response_headers
    call = chat("Design a distributed cache, step by step, and analyze the trade-offs.",
                metadata={"step": "answer"})
    assert r.resolve(call, r.needs(call)) == "l"  # not the local fallback: auto is usable
