"""A/B experiments: an alias split between variants (models, prompt templates, parameters).

`ExperimentMiddleware` runs once per call, right after telemetry and before prompt templates
render (so a variant's template is the one rendered, and every later stage — guardrails,
budgets, the cache key, the ledger — sees the variant's request). For a request whose model
is an experiment's `alias` it picks a variant and applies it:

- `model`: the call's alias (`call.alias`) becomes the variant's model, so budgets, rate
  limits, routing and the cache serve and price the variant. `request.model` keeps the
  experiment alias: access control checks that one (a caller allowed the experiment's alias
  is served by every variant without needing each variant's model), and the usage and
  quality records keep it too. Routing rules apply only while `call.alias ==
  request.model`, so a variant that changes the model is not re-routed by them.
- `template`: the prompt template rendered for the call (the request's own variables kept);
  a variant without one keeps a template bound to the experiment alias
  (`prompts.aliases`) even when its model differs.
- `params`: request parameters (temperature, max_tokens, ...), overriding the request's:
  the experiment is what is being measured.

Assignment is a hash of the experiment name and the sticky id (user, conversation, key id or
request id; the request id when the call has none of the chosen kind), so the same user
lands in the same variant on every replica and after every restart, with no shared state.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gatewise.config.loader import ResolvedConfig
from gatewise.config.schema_ops import ExperimentConfig
from gatewise.errors import ConfigError, GatewayError, InvalidRequestError
from gatewise.observability.metrics import Counter
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import Cancelled, ChunkStream
from gatewise.prompts.middleware import PROMPT_KEY, VARIABLES_KEY, parse_variables
from gatewise.types.validation import chat_request_from_dict

HEADER = "x-gatewise-experiment"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
# Parameters a variant may not set: they are the request itself, not how it is answered.
_FIXED_PARAMS = frozenset({"model", "messages", "stream", "stream_options", "metadata", "user",
                           "tools", "tool_choice"})
_SCALE = float(2**64)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    weight: float
    model: str | None = None
    template: str | None = None
    # Validated and converted to the request's field types once, at build time.
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    alias: str
    sticky: str
    metric: str
    variants: tuple[Variant, ...]
    # Cumulative weight shares (the last is 1.0): variant i takes [bounds[i-1], bounds[i]).
    bounds: tuple[float, ...]

    @property
    def control(self) -> Variant:
        """The first variant: what the others are compared against."""
        return self.variants[0]

    def assign(self, sticky_id: str) -> Variant:
        """The variant for this id: a hash, so every replica and every restart agrees."""
        digest = hashlib.blake2b(f"{self.name}\x00{sticky_id}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / _SCALE
        return self.variants[min(bisect.bisect_right(self.bounds, u), len(self.variants) - 1)]


def sticky_id(call: Call, sticky: str) -> str:
    """The id a call is assigned by; the request id when it has none of that kind."""
    ident = call.identity
    found: str | None
    if sticky == "user":
        found = ident.user or getattr(call.request, "user", None)
    elif sticky == "conversation":
        found = call.conversation
    elif sticky == "key":
        found = ident.key_id
    else:
        found = None
    return f"{sticky}:{found}" if found else f"request:{call.request_id}"


def _status(error: BaseException | None) -> str:
    if error is None:
        return "200"
    if isinstance(error, Cancelled):
        return "499"
    if isinstance(error, GatewayError):
        return str(error.status)
    return "500"


class ExperimentMiddleware:
    def __init__(self, experiments: Mapping[str, Experiment], counter: Counter, *,
                 bound_templates: Mapping[str, str] | None = None) -> None:
        """`experiments`: by name; `bound_templates`: `prompts.aliases` (alias → template)."""
        self.experiments = dict(experiments)
        self.by_alias = {e.alias: e for e in experiments.values()}
        self.counter = counter
        self.bound = dict(bound_templates or {})

    async def __call__(self, call: Call, next: Handler) -> Any:
        # The gateway's own calls (a quality judge's) are not part of any experiment.
        exp = self.by_alias.get(call.alias) if call.kind == "chat" and not call.internal \
            else None
        if exp is None:
            return await next(call)
        variant = exp.assign(sticky_id(call, exp.sticky))
        self.apply(call, exp, variant)
        labels = (exp.name, variant.name)
        try:
            result = await next(call)
        except BaseException as exc:
            self.counter.inc((*labels, _status(exc)))
            raise
        if isinstance(result, ChunkStream):
            result.on_finish(lambda c, err: self.counter.inc((*labels, _status(err))))
        else:
            self.counter.inc((*labels, "200"))
        return result

    def apply(self, call: Call, exp: Experiment, variant: Variant) -> None:
        call.experiment = (exp.name, variant.name)
        call.response_headers[HEADER] = f"{exp.name}/{variant.name}"
        req = call.chat_request
        md = req.metadata
        template = variant.template
        if template is None and variant.model is not None and variant.model != exp.alias \
                and call.prompt is None and not (md and PROMPT_KEY in md):
            template = self.bound.get(exp.alias)  # keep the experiment alias's template
        if template is not None:
            if isinstance(call.prompt, tuple):
                variables = call.prompt[1]
            else:
                variables = parse_variables(md.get(VARIABLES_KEY) if md else None)
            call.prompt = (template, variables)
        if variant.params:
            call.request = msgspec.structs.replace(req, **variant.params)
        if variant.model is not None:
            call.alias = variant.model
        call.event("experiment", experiment=exp.name, variant=variant.name)


# -- building from config ----------------------------------------------------------------------
def build_experiments(resolved: ResolvedConfig) -> dict[str, Experiment]:
    """The enabled experiments of `experiments:`, checked: every error names its key."""
    cfg = resolved.config
    file = resolved.file
    known = set(resolved.aliases) | set(cfg.orchestrations)
    out: dict[str, Experiment] = {}
    owner: dict[str, str] = {}
    for name, ec in cfg.experiments.items():
        path = f"experiments.{name}"
        if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
            raise ConfigError("an experiment's name is 1-64 letters, digits and '_.-'",
                              file=file, path=path)
        exp = _build_one(name, ec, resolved, known, path)
        if not ec.enabled:
            continue
        if ec.alias in owner:
            raise ConfigError(f"alias '{ec.alias}' is already split by experiment "
                              f"'{owner[ec.alias]}' (one enabled experiment per alias)",
                              file=file, path=f"{path}.alias")
        owner[ec.alias] = name
        out[name] = exp
    return out


def _build_one(name: str, ec: ExperimentConfig, resolved: ResolvedConfig, known: set[str],
               path: str) -> Experiment:
    file = resolved.file
    if len(ec.variants) < 2:
        raise ConfigError("an experiment needs at least two variants (the first is the "
                          "control)", file=file, path=f"{path}.variants")
    seen: set[str] = set()
    variants: list[Variant] = []
    for i, vc in enumerate(ec.variants):
        vpath = f"{path}.variants[{i}]"
        if vc.name in seen:
            raise ConfigError(f"variant name '{vc.name}' is used twice", file=file,
                              path=f"{vpath}.name")
        seen.add(vc.name)
        if not math.isfinite(vc.weight):
            raise ConfigError("weight must be a finite number > 0", file=file,
                              path=f"{vpath}.weight")
        model = vc.model
        if model is not None and model not in known and resolved.direct(model) is None:
            raise ConfigError(f"names '{model}', which is not an alias in 'models' (nor an "
                              "orchestration or an allowed provider/model)", file=file,
                              path=f"{vpath}.model")
        if (model is None or model == ec.alias) and ec.alias not in known:
            raise ConfigError(f"variant '{vc.name}' keeps the model '{ec.alias}', which is "
                              "not an alias in 'models': give it a model", file=file,
                              path=f"{vpath}.model")
        variants.append(Variant(vc.name, vc.weight, model, vc.template,
                                _params(vc.params, file, f"{vpath}.params")))
    total = math.fsum(v.weight for v in variants)
    acc, bounds = 0.0, []
    for v in variants:
        acc += v.weight
        bounds.append(acc / total)
    bounds[-1] = 1.0
    return Experiment(name, ec.alias, ec.sticky, ec.metric, tuple(variants), tuple(bounds))


def _params(params: dict[str, Any], file: str | None, path: str) -> dict[str, Any]:
    """The parameters as the request's typed fields (checked like a request's own)."""
    for key in params:
        if key in _FIXED_PARAMS:
            raise ConfigError(f"'{key}' cannot be set by a variant (only how the request is "
                              "answered: temperature, max_tokens, ...)", file=file,
                              path=f"{path}.{key}")
    if not params:
        return {}
    probe = {"model": "probe", "messages": [{"role": "user", "content": "probe"}], **params}
    try:
        req = chat_request_from_dict(probe)
    except InvalidRequestError as exc:
        where = f"{path}.{exc.param}" if exc.param else path
        raise ConfigError(str(exc), file=file, path=where) from None
    return {k: getattr(req, k) for k in params}


def build_middleware(resolved: ResolvedConfig, counter: Counter) -> ExperimentMiddleware | None:
    """The stage for `Gateway`'s chain; None (no stage at all) without enabled experiments."""
    experiments = build_experiments(resolved)
    if not experiments:
        return None
    return ExperimentMiddleware(experiments, counter,
                                bound_templates=resolved.config.prompts.aliases)
