"""A/B experiments (`gatewise.quality.experiments`): requests for an experiment's alias are
split between its variants by weight, the same user always gets the same variant (on any
gateway, after any restart), and the variant's model, template and parameters are what the
rest of the chain sees, while access control, the usage ledger and the caller keep the
experiment's alias."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import ConfigError, ForbiddenError
from gatewise.gateway import Gateway
from gatewise.pipeline.core import Call, Handler, Identity
from gatewise.quality.experiments import build_experiments
from gatewise.security.rbac import permissions_for
from gatewise.storage.quality import QualityFilter
from gatewise.types.messages import text_of

MODELS = {"chat": [{"model": "fake/control-model"}], "small": [{"model": "fake/small-model"}],
          "big": [{"model": "fake/big-model"}], "broken": [{"model": "fake/fail-500"}]}
PROMPTS = {"templates": {"terse": {"role": "a terse assistant", "instructions": "Be brief."},
                         "polite": {"role": "a polite assistant",
                                    "instructions": "Be polite to {{ name }}."}},
           "aliases": {"chat": "terse"}}


def _experiment(**over: Any) -> dict[str, Any]:
    exp: dict[str, Any] = {"alias": "chat", "variants": [
        {"name": "control"}, {"name": "treatment", "model": "small"}]}
    exp.update(over)
    return exp


def _resolved(experiments: dict[str, Any], **extra: Any) -> Any:
    cfg, warnings = parse_config({"models": MODELS, "storage": {"database": "memory"},
                                  "router": {"retry": {"max_retries": 0}},
                                  "prompts": PROMPTS, "experiments": experiments, **extra})
    return resolve_config(cfg, None, {}, warnings)


class Seen:
    """A per-call middleware keeping what later stages see of each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, tuple[str, str] | None]] = []

    async def __call__(self, call: Call, next: Handler) -> Any:
        self.calls.append((call.alias, call.request.model, call.request, call.experiment))
        return await next(call)


def _gateway(experiments: dict[str, Any], seen: Seen | None = None) -> Gateway:
    return Gateway(_resolved(experiments), middlewares=[seen] if seen is not None else ())


def _call(user: str | None = None, request_id: str | None = None) -> Call:
    from gatewise.types.validation import chat_request_from_dict

    req = chat_request_from_dict({"model": "chat", "messages": [{"role": "user",
                                                                 "content": "hi"}]})
    return Call("chat", req, Identity(user=user), request_id=request_id)


# -- assignment --------------------------------------------------------------------------------
def test_the_same_user_always_gets_the_same_variant() -> None:
    exp = build_experiments(_resolved({"e": _experiment()}))["e"]
    from gatewise.quality.experiments import sticky_id

    first = {u: exp.assign(sticky_id(_call(u), "user")).name for u in ("ann", "bob", "cy")}
    for _ in range(3):
        again = {u: exp.assign(sticky_id(_call(u), "user")).name for u in first}
        assert again == first


def test_weights_split_ten_thousand_users_within_tolerance() -> None:
    exp = build_experiments(_resolved({"e": _experiment(variants=[
        {"name": "a", "weight": 1}, {"name": "b", "model": "small", "weight": 3},
        {"name": "c", "model": "big", "weight": 6}])}))["e"]
    counts = Counter(exp.assign(f"user:u{i}").name for i in range(10_000))
    # 3 standard deviations of a binomial(10k, p) are at most 150: well inside 2 %.
    assert abs(counts["a"] - 1000) < 200
    assert abs(counts["b"] - 3000) < 200
    assert abs(counts["c"] - 6000) < 200


def test_assignment_depends_on_the_experiment_name_not_only_the_user() -> None:
    resolved = _resolved({"e1": _experiment(), "e2": _experiment(alias="big")})
    exps = build_experiments(resolved)
    same = sum(exps["e1"].assign(f"user:u{i}").name == exps["e2"].assign(f"user:u{i}").name
               for i in range(2000))
    assert 800 < same < 1200  # independent halves agree about half the time


async def test_two_gateways_agree_on_every_users_variant() -> None:
    variants: list[list[tuple[str, str] | None]] = []
    for _ in range(2):
        seen = Seen()
        async with _gateway({"e": _experiment()}, seen) as gw:
            for i in range(40):
                await gw.chat("hi", model="chat", identity=Identity(user=f"user-{i}"))
        variants.append([c[3] for c in seen.calls])
    assert variants[0] == variants[1]
    assert {v[1] for v in variants[0] if v} == {"control", "treatment"}


async def test_a_request_without_the_sticky_id_is_assigned_by_its_request_id() -> None:
    exp = build_experiments(_resolved({"e": _experiment(sticky="conversation")}))["e"]
    from gatewise.quality.experiments import sticky_id

    assert sticky_id(_call(request_id="req_1"), "conversation") == "request:req_1"
    assert sticky_id(_call(user="ann"), "user") == "user:ann"
    names = {exp.assign(sticky_id(_call(request_id=f"req_{i}"), "conversation")).name
             for i in range(50)}
    assert names == {"control", "treatment"}


# -- the variant is applied --------------------------------------------------------------------
async def test_the_variant_model_serves_while_the_request_keeps_the_experiment_alias() -> None:
    seen = Seen()
    async with _gateway({"e": _experiment(sticky="request")}, seen) as gw:
        results = [await gw.chat("hi", model="chat") for _ in range(30)]
        await gw.accounting.ledger.flush()
        usage = await gw.admin.usage_records(since=None, until=None, limit=100, team=None,
                                             key_id=None)
    served: Counter[str] = Counter()
    for (alias, requested, _, experiment), r in zip(seen.calls, results, strict=True):
        assert requested == "chat"
        assert experiment is not None and experiment[0] == "e"
        want = "small" if experiment[1] == "treatment" else "chat"
        assert alias == want
        assert str(r.info.deployment).startswith(f"{want}:")
        served[experiment[1]] += 1
    assert set(served) == {"control", "treatment"}
    assert {u.alias for u in usage} == {"chat"}  # the ledger keeps the experiment alias
    m = gw.metrics.experiment_requests
    assert m.get(("e", "treatment", "200")) == served["treatment"]
    assert m.get(("e", "control", "200")) == served["control"]


async def test_a_caller_allowed_the_experiment_alias_needs_no_grant_for_the_variants() -> None:
    key = Identity(key_id="k1", team="t", role="member", permissions=permissions_for("member"),
                   models=("chat",))
    async with _gateway({"e": _experiment(sticky="request", variants=[
            {"name": "a", "model": "small"}, {"name": "b", "model": "big"}])}) as gw:
        for _ in range(10):
            r = await gw.chat("hi", model="chat", identity=key)
            assert str(r.info.deployment).split(":")[0] in ("small", "big")
        with pytest.raises(ForbiddenError):
            await gw.chat("hi", model="small", identity=key)


async def test_a_variants_template_and_params_reach_the_provider() -> None:
    seen = Seen()
    exp = _experiment(sticky="user", variants=[
        {"name": "control"},
        {"name": "polite", "template": "polite", "params": {"temperature": 0.1,
                                                             "max_tokens": 7}}])
    async with _gateway({"e": exp}, seen) as gw:
        for i in range(20):
            await gw.chat("hi", model="chat", identity=Identity(user=f"u{i}"),
                          metadata={"prompt_variables": '{"name": "Ann"}'})
    by_variant: dict[str, Any] = {c[3][1]: c[2] for c in seen.calls if c[3]}
    polite, control = by_variant["polite"], by_variant["control"]
    assert "Be polite to Ann." in text_of(polite.messages[0].content)
    assert (polite.temperature, polite.max_tokens) == (0.1, 7)
    # The control keeps the experiment alias's own bound template and the caller's params.
    assert "Be brief." in text_of(control.messages[0].content)
    assert (control.temperature, control.max_tokens) == (None, None)


async def test_a_variant_on_another_model_keeps_the_experiment_alias_template() -> None:
    seen = Seen()
    async with _gateway({"e": _experiment(sticky="request", variants=[
            {"name": "a", "model": "small"}, {"name": "b", "model": "big"}])}, seen) as gw:
        await gw.chat("hi", model="chat")
    assert "Be brief." in text_of(seen.calls[0][2].messages[0].content)


async def test_the_response_header_names_the_arm_and_errors_are_counted_by_status() -> None:
    async with _gateway({"e": _experiment(sticky="request", variants=[
            {"name": "ok", "model": "small", "weight": 1},
            {"name": "down", "model": "broken", "weight": 1}])}) as gw:
        statuses: Counter[str] = Counter()
        for _ in range(20):
            call = _call()
            try:
                await gw.run(call)
                statuses["200"] += 1
                assert call.response_headers["x-gatewise-experiment"] == "e/ok"
            except Exception as exc:
                statuses[str(getattr(exc, "status", None))] += 1
                assert call.response_headers["x-gatewise-experiment"] == "e/down"
        m = gw.metrics.experiment_requests
        assert statuses["502"] > 0 and statuses["200"] > 0
        assert m.get(("e", "down", "502")) == statuses["502"]
        assert m.get(("e", "ok", "200")) == statuses["200"]


async def test_a_disabled_experiment_changes_nothing() -> None:
    seen = Seen()
    async with _gateway({"e": _experiment(enabled=False)}, seen) as gw:
        assert gw.experiments is None
        await gw.chat("hi", model="chat")
    assert seen.calls[0][0] == "chat" and seen.calls[0][3] is None


# -- configuration errors name the key ---------------------------------------------------------
@pytest.mark.parametrize(("exp", "path", "words"), [
    (_experiment(variants=[{"name": "a"}, {"name": "b", "model": "nope"}]),
     "experiments.e.variants[1].model", "not an alias"),
    (_experiment(variants=[{"name": "a"}]), "experiments.e.variants", "two variants"),
    (_experiment(variants=[{"name": "a"}, {"name": "a", "model": "big"}]),
     "experiments.e.variants[1].name", "twice"),
    (_experiment(variants=[{"name": "a"}, {"name": "b", "weight": float("inf")}]),
     "experiments.e.variants[1].weight", "finite"),
    (_experiment(alias="ghost"), "experiments.e.variants[0].model", "give it a model"),
    (_experiment(variants=[{"name": "a"}, {"name": "b", "params": {"temperature": 9}}]),
     "experiments.e.variants[1].params.temperature", "<= 2"),
    (_experiment(variants=[{"name": "a"}, {"name": "b", "params": {"model": "x"}}]),
     "experiments.e.variants[1].params.model", "cannot be set"),
])
def test_invalid_experiments_are_config_errors_naming_the_key(exp: dict[str, Any], path: str,
                                                              words: str) -> None:
    with pytest.raises(ConfigError) as err:
        Gateway(_resolved({"e": exp}))
    assert err.value.path == path
    assert words in str(err.value)


def test_a_zero_weight_is_refused_by_the_schema_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        _resolved({"e": _experiment(variants=[{"name": "a", "weight": 0}, {"name": "b"}])})
    assert "experiments" in str(err.value) and "weight" in str(err.value)


def test_two_enabled_experiments_may_not_split_one_alias() -> None:
    with pytest.raises(ConfigError) as err:
        Gateway(_resolved({"e1": _experiment(), "e2": _experiment()}))
    assert err.value.path == "experiments.e2.alias"


async def test_quality_records_carry_the_experiment_alias_and_the_variant() -> None:
    async with _gateway({"e": _experiment(sticky="request")}) as gw:
        results = [await gw.chat("hi", model="chat") for _ in range(12)]
        await gw.quality.flush()
        rows = await gw.quality.store.query(QualityFilter(experiment="e"))
    assert len(rows) == 12
    assert {r.alias for r in rows} == {"chat"}
    by_id = {r.request_id: r for r in rows}
    for res in results:
        row = by_id[res.info.request_id]
        want = "treatment" if str(res.info.deployment).startswith("small:") else "control"
        assert (row.experiment, row.variant) == ("e", want)
    assert {r.variant for r in rows} == {"control", "treatment"}


async def test_a_streamed_answer_is_counted_when_the_stream_ends() -> None:
    async with _gateway({"e": _experiment(sticky="user")}) as gw:
        text = "".join([c.choices[0].delta.content or "" async for c in gw.stream(
            "hi there", model="chat", identity=Identity(user="ann"))
            if c.choices])
        assert text == "Hello! You said: hi there"
        m = gw.metrics.experiment_requests
        assert sum(m.get(("e", v, "200")) for v in ("control", "treatment")) == 1


async def test_the_gateways_own_calls_are_never_part_of_an_experiment() -> None:
    async with _gateway({"e": _experiment(sticky="request")}) as gw:
        for _ in range(10):
            call = _call()
            call.internal = True  # a quality judge's call
            await gw.run(call)
            assert call.experiment is None and call.alias == "chat"
