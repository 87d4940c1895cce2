"""Aliases → deployments: which alias serves a call, and which of its deployments.

Two decisions, both in microseconds and both deterministic under a seeded RNG:

1. `resolve(call)`: the alias. The first matching routing rule wins (operator policy beats
   application hints); otherwise a named step (`metadata.step` or header `x-gatewise-step`)
   maps through `router.steps`, falling back to the embedded local alias when the mapped alias
   has no usable deployment; then `auto` (requested, or named by a rule) becomes the alias of
   the prompt's complexity tier, reported in `x-gatewise-complexity`.
2. `choose(deps, needs)`: the deployment. Filters, in order: config problems (a missing key),
   capabilities (tools, vision, JSON schema, streaming, context window: never route to a
   deployment lacking one), the injected `available` hook (the circuit breaker), cool-downs
   after recent failures (only where the alias has another deployment to use, so one blip on a
   single-deployment alias does not fail every request for `cooldown_s`); then the configured
   strategy picks among what is left. When the breakers or cool-downs leave nothing, the
   `CircuitOpenError` carries `retry_after`: the soonest any of them lets a request through
   (the injected `retry_in` hook, the breaker's time to its next probe).

The router holds the `PerformanceTracker` the strategies read; `TrackingMiddleware` feeds it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping
from typing import Protocol

from gatewise.config.schema import Config
from gatewise.errors import (
    CircuitOpenError,
    ConfigError,
    ContextLengthExceededError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundRequestError,
)
from gatewise.pipeline.core import Call
from gatewise.providers.deployment import Deployment
from gatewise.providers.presets import LOCAL_MODEL_WIRES
from gatewise.routing.capabilities import NO_NEEDS, CapabilityIndex, CapabilityLookup, Needs, needs_of
from gatewise.routing.complexity import TIERS, ComplexityScorer, Tier
from gatewise.routing.rules import RuleSet, header_value
from gatewise.routing.strategies import Strategy, make_strategy
from gatewise.routing.tracker import PerformanceTracker

AUTO = "auto"
STEP_HEADER = b"x-gatewise-step"
COMPLEXITY_HEADER = "x-gatewise-complexity"
_DIRECT_CACHE = 256  # distinct direct (`provider/model`) names one router ever serves

_PARAM_OF = {"tools": "tools", "vision": "messages", "json_schema": "response_format",
             "streaming": "stream", "chat": "model"}


class Routable(Protocol):
    """What the router reads of a resolved config (`config.loader.ResolvedConfig` is one).

    A protocol, not the loader's class, so routing stays below the loader that builds it."""

    @property
    def config(self) -> Config: ...

    @property
    def aliases(self) -> dict[str, list[Deployment]]: ...

    @property
    def default_model(self) -> str | None: ...

    def direct(self, ref: str) -> Deployment | None: ...


def _always(dep: Deployment) -> bool:
    return True


def find_local_alias(aliases: Mapping[str, list[Deployment]]) -> str | None:
    """The alias served by the embedded model: `local` if it has an in-process deployment,
    else the first alias whose deployments all run in process."""
    deps = aliases.get("local")
    if deps and any(d.target.wire in LOCAL_MODEL_WIRES for d in deps):
        return "local"
    for name, deps in aliases.items():
        if deps and all(d.target.wire in LOCAL_MODEL_WIRES for d in deps):
            return name
    return None


class Router:
    def __init__(
        self,
        resolved: Routable,
        *,
        seed: int | None = None,
        tracker: PerformanceTracker | None = None,
        available: Callable[[Deployment], bool] | None = None,
        retry_in: Callable[[Deployment], float] | None = None,
        capabilities: CapabilityLookup | None = None,
        strategy: str | Strategy | None = None,
        scorer: ComplexityScorer | None = None,
        local_alias: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        rc = resolved.config.router
        self._resolved = resolved
        self._aliases = resolved.aliases
        self._orchestrations = frozenset(resolved.config.orchestrations)
        self._direct: dict[str, Deployment] = {}
        self._rng = random.Random(seed)
        self.tracker = tracker or PerformanceTracker(cooldown_s=rc.cooldown_s, clock=clock)
        # Injected by the circuit breaker: False while a deployment must not be called.
        self.available: Callable[[Deployment], bool] = available or _always
        # Also the breaker's: seconds until an unavailable deployment may take a probe.
        self.retry_in: Callable[[Deployment], float] | None = retry_in
        self.capabilities = CapabilityIndex(capabilities)
        self.strategy: Strategy = make_strategy(strategy or rc.strategy, self.tracker, self._rng) \
            if strategy is None or isinstance(strategy, str) else strategy
        self.rules = RuleSet(rc.rules)
        self.steps: dict[str, str] = dict(rc.steps)
        self.complexity: dict[Tier, str] | None = dict(rc.complexity) if rc.complexity else None
        self.scorer = scorer or ComplexityScorer()
        self.local_alias = local_alias or find_local_alias(self._aliases)
        self._auto_is_alias = AUTO in self._aliases
        self._resolves = bool(self.rules) or bool(self.steps) or self.complexity is not None
        self._needs_for: object = None
        self._needs: Needs = NO_NEEDS

    @property
    def default_model(self) -> str | None:
        return self._resolved.default_model

    def aliases(self) -> list[str]:
        names = list(self._aliases)
        if self.complexity is not None and not self._auto_is_alias:
            names.append(AUTO)
        return names

    def candidates(self, model: str) -> list[Deployment]:
        deps = self._aliases.get(model)
        if deps is not None:
            return deps
        dep = self._direct.get(model)
        if dep is None:
            # Callers choose these names, and every name served grows per-deployment state
            # (tracker, breaker, rate windows, metric series). Refusals are not remembered, and
            # at most `_DIRECT_CACHE` distinct names are ever served by one process, so a
            # stream of made-up names cannot grow memory or metric cardinality.
            shown = model if len(model) <= 80 else f"{model[:80]}…"
            dep = self._resolved.direct(model)
            if dep is None:
                raise ModelNotFoundRequestError(
                    f"The model '{shown}' does not exist or is not configured on this gateway",
                    param="model",
                )
            if len(self._direct) >= _DIRECT_CACHE:
                raise ModelNotFoundRequestError(
                    f"The model '{shown}' is not configured on this gateway, and the limit of "
                    f"{_DIRECT_CACHE} distinct direct models is reached: add an alias for it",
                    param="model",
                )
            self._direct[model] = dep
        return [dep]

    @property
    def resolves(self) -> bool:
        """Whether any rule, step or complexity tier can change the alias a call asked for."""
        return self._resolves

    # -- 1. which alias ----------------------------------------------------------------------
    def needs(self, call: Call) -> Needs:
        """What the call's request needs from a deployment (embeddings: nothing checked).

        Resolution and choice both ask within one call, so the last answer is kept for the
        same request object (a fallback's simplified prompt is a new object: recomputed)."""
        if call.kind != "chat":
            return NO_NEEDS
        req = call.request
        if req is self._needs_for:
            return self._needs
        needs = needs_of(call.chat_request)
        self._needs_for, self._needs = req, needs
        return needs

    def resolve(self, call: Call, needs: Needs = NO_NEEDS) -> str:
        """Applies rules, steps and complexity to `call.alias`; records why on the call."""
        if not self._resolves or call.kind != "chat":
            return call.alias
        req = call.chat_request
        alias = call.alias
        rule = self.rules.match(alias, req.metadata, call.request_headers) if self.rules else None
        if rule is not None:
            alias = rule.alias
            call.event("rule", index=rule.index, alias=alias)
        elif self.steps:
            step = self.step_of(call)
            mapped = self.steps.get(step) if step is not None else None
            if mapped is not None:
                local = self.local_alias
                if local is not None and local != mapped and not self.usable(mapped, needs):
                    call.event("step", step=step, alias=local, local_fallback=True)
                    mapped = local
                else:
                    call.event("step", step=step, alias=mapped)
                alias = mapped
        if alias == AUTO and self.complexity is not None and not self._auto_is_alias:
            c = self.scorer.score_request(req)
            alias = self.tier_alias(c.tier)
            call.response_headers[COMPLEXITY_HEADER] = c.header
            call.event("complexity", tier=c.tier, score=c.score, alias=alias)
        call.alias = alias
        return alias

    def step_of(self, call: Call) -> str | None:
        meta = call.chat_request.metadata
        step = meta.get("step") if meta else None
        if step is None and call.request_headers:
            step = header_value(call.request_headers, STEP_HEADER)
        return step

    def tier_alias(self, tier: Tier) -> str:
        """The alias for `tier`; an unmapped tier borrows the next larger one, else smaller."""
        mapping: dict[Tier, str] = self.complexity or {}
        found = mapping.get(tier)
        if found is not None:
            return found
        i = TIERS.index(tier)
        for t in (*TIERS[i + 1:], *reversed(TIERS[:i])):
            if t in mapping:
                return mapping[t]
        raise ConfigError("router.complexity maps no tier to an alias")

    def usable(self, alias: str, needs: Needs = NO_NEEDS) -> bool:
        """Whether `alias` has a deployment `choose` would accept right now."""
        if alias in self._orchestrations or (alias == AUTO and self.complexity is not None
                                             and not self._auto_is_alias):
            return True
        try:
            self.eligible(self.candidates(alias), needs)
        except GatewayError:
            return False
        return True

    # -- 2. which deployment -----------------------------------------------------------------
    def choose(self, deps: list[Deployment], needs: Needs = NO_NEEDS, *,
               exclude: Collection[str] | None = None) -> Deployment:
        """The deployment to call, or the error that says why none can be called."""
        if len(deps) == 1 and exclude is None:
            dep = deps[0]
            if dep.problem is not None:
                raise ConfigError(f"deployment '{dep.id}' cannot serve: {dep.problem}")
            return self.strategy.pick(self.eligible(deps, needs), needs)
        return self.strategy.pick(self.eligible(deps, needs, exclude), needs)

    def eligible(self, deps: list[Deployment], needs: Needs = NO_NEEDS,
                 exclude: Collection[str] | None = None) -> list[Deployment]:
        """The deployments the strategy may pick from (never empty: raises instead).

        One pass with every filter, counting what each let through, so the error names the
        filter that emptied the list."""
        caps = self.capabilities
        check_caps = caps.enabled and not needs.trivial
        available = self.available
        check_available = available is not _always
        tracker = self.tracker
        now = tracker.clock()
        stats = tracker.by_id
        servable = untried = capable = up = 0
        out: list[Deployment] = []
        cooling: list[Deployment] = []
        down: list[Deployment] | None = None
        for d in deps:
            if d.problem is not None:
                continue
            servable += 1
            if exclude is not None and d.id in exclude:
                continue
            untried += 1
            if check_caps and needs.missing(caps.get(d)) is not None:
                continue
            capable += 1
            if check_available and not available(d):
                if down is None:
                    down = []
                down.append(d)
                continue
            up += 1
            s = stats.get(d.id)
            if s is not None and s.cooldown_until > now:
                cooling.append(d)
            else:
                out.append(d)
        if out:
            return out
        alias = deps[0].alias if deps else "?"
        if not servable:
            raise ConfigError(f"no deployment of '{alias}' can serve: "
                              + "; ".join(f"{d.id}: {d.problem}" for d in deps))
        if not untried:
            raise CircuitOpenError(f"every deployment of '{alias}' was already tried")
        if not capable:
            raise self._incapable(alias, [d for d in deps if d.problem is None], needs)
        if not up:
            retry_in = self.retry_in
            wait = min((retry_in(d) for d in down or ()), default=None) \
                if retry_in is not None else None
            hint = f"; next probe in {wait:.1f}s" if wait else ""
            raise CircuitOpenError(
                f"every deployment of '{alias}' has an open circuit breaker{hint}",
                retry_after=wait)
        if servable == 1:
            return cooling  # nowhere else to go: one failure must not bench the whole alias
        cool = min(stats[d.id].cooldown_until for d in cooling) - now
        raise CircuitOpenError(f"every deployment of '{alias}' is cooling down after recent "
                               "failures", retry_after=max(0.0, cool))

    def _incapable(self, alias: str, deps: list[Deployment], needs: Needs) -> GatewayError:
        what = self.capabilities.missing(deps[0], needs) or "chat"
        if what == "context_window":
            windows = [self.capabilities.get(d).context_window or 0 for d in deps]
            return ContextLengthExceededError(
                f"about {needs.context_tokens} tokens do not fit the context window of any "
                f"deployment of '{alias}' (largest {max(windows)})",
                provider="gatewise", model=alias, param="messages")
        return InvalidRequestError(
            f"no deployment of '{alias}' supports {what.replace('_', ' ')}, which this request "
            "needs", param=_PARAM_OF.get(what, "model"), code="unsupported_capability")

    # -- performance feedback ----------------------------------------------------------------
    def report_quality(self, deployment_id: str, score: float) -> None:
        """A caller's 0..1 judgement of an answer; feeds the latency and cost strategies."""
        self.tracker.report_quality(deployment_id, score)
