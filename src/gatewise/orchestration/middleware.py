"""`OrchestrationMiddleware`: orchestrations as aliases, for every front end (HTTP, CLI, library).

When the requested model names an entry of `Config.orchestrations`, the call is served by that
mode instead of one model, and the answer is an ordinary OpenAI `chat.completion` (or stream),
so the official SDKs need nothing new:

- `parallel`: `choices[i]` is the first choice of `models[i]` (`index` = the model's position,
  so a failed model leaves a gap instead of shifting the others); headers
  `x-gatewise-models: a,b,c` and, for failures, `x-gatewise-failed: c=ProviderServerError`.
  All failed → `AllTargetsFailedError`.
- `consensus`: the winner's answer; headers `x-gatewise-agreement` (0..1, 3 decimals),
  `x-gatewise-agreed: true|false` (against `min_agreement`) and `x-gatewise-winner`.
- `cascade`: the accepted answer; header `x-gatewise-cascade: a>b` (every model tried). No
  model passing the gate is a failure (`AllTargetsFailedError` carrying each rejection as a
  502 `ProviderResponseError`): never a 200 for an answer the gate refused.

Branches run through everything after this middleware (fallback, routing, retries, breaker),
each as its own `Call` that inherits identity and headers (and, when someone listens to the
call's steps, a listener that hands each branch's steps on, marked with `branch`: see
`gatewise.pipeline.steps`). The outer call gets the summed usage of every branch (judges
included: it is what the request cost) and a synthetic deployment `<name>:<mode>`, so
metrics count one request of the orchestration alias; its cost is the branches' summed cost,
so budgets and the ledger charge the request. `usage` in the body
is that same sum. A streaming request gets the finished answer replayed as chunks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from gatewise.config.schema import OrchestrationConfig
from gatewise.errors import AllTargetsFailedError, GatewayError, InvalidRequestError, ProviderResponseError
from gatewise.orchestration.cascade import run_cascade
from gatewise.orchestration.consensus import run_consensus
from gatewise.orchestration.parallel import Branches, ModelResult, sum_cost, sum_usage
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import stream_completion
from gatewise.providers.base import Target
from gatewise.providers.deployment import Deployment
from gatewise.types.ids import new_id
from gatewise.types.responses import ChatCompletion, Choice


class OrchestrationMiddleware:
    def __init__(self, orchestrations: Mapping[str, OrchestrationConfig], *,
                 price: Callable[[Call], float | None] | None = None) -> None:
        """`price`: USD of a finished branch call at the gateway's price table (the
        orchestration's own deployment has none; see `Branches.price`)."""
        self.orchestrations = dict(orchestrations)
        self._price = price
        self._deployments = {
            name: Deployment(name, f"{name}:{o.mode}",
                             Target(provider="gatewise", wire="orchestration", model=o.mode))
            for name, o in self.orchestrations.items()
        }

    async def __call__(self, call: Call, next: Handler) -> Any:
        orch = self.orchestrations.get(call.alias)
        if orch is None:
            return await next(call)
        if call.kind != "chat":
            raise InvalidRequestError(f"'{call.alias}' is an orchestration of chat models",
                                      param="model")
        name = call.alias
        req = call.chat_request
        branches = Branches(next, call.identity, call.request_headers, call.request_id,
                            call.deadline, parent=call, price=self._price)
        t0 = time.perf_counter()
        if orch.mode == "parallel":
            fan = await branches.fan_out(req, orch.models)
            results = fan.results
            answer = self._parallel(call, name, results)
        elif orch.mode == "consensus":
            con = await run_consensus(branches, req, orch.models, judge=orch.judge,
                                      min_agreement=orch.min_agreement)
            results = con.results
            if con.winner is None or con.winner.completion is None:
                raise _all_failed(name, results)
            answer = con.winner.completion
            h = call.response_headers
            h["x-gatewise-agreement"] = f"{con.agreement:.3f}"
            h["x-gatewise-agreed"] = "true" if con.agreed else "false"
            h["x-gatewise-winner"] = con.winner.model
            if con.winner.deployment:
                h["x-gatewise-deployment"] = con.winner.deployment
            call.event("consensus", winner=con.winner.model, agreement=con.agreement,
                       agreed=con.agreed, method=con.method)
        else:
            cas = await run_cascade(branches, req, orch.models, gate=orch.gate,
                                    judge=orch.judge, min_score=orch.min_score)
            results = cas.results
            call.response_headers["x-gatewise-cascade"] = cas.path
            call.event("cascade", path=cas.path, accepted=cas.accepted,
                       reasons=[s.verdict.reason for s in cas.trail if not s.accepted])
            if not cas.accepted or cas.result is None or cas.result.completion is None:
                raise AllTargetsFailedError(
                    f"no model of '{name}' passed the quality gate: "
                    + "; ".join(f"{s.model}: {s.verdict.reason}" for s in cas.trail),
                    [_as_error(s.result, s.verdict.reason) for s in cas.trail])
            answer = cas.result.completion
            if cas.result.deployment:
                call.response_headers["x-gatewise-deployment"] = cas.result.deployment
        usage = sum_usage(results)
        call.deployment = self._deployments[name]
        call.usage = usage
        # The synthetic deployment has no price: what the request cost is what its branches
        # cost (judges included), so budgets and the ledger charge it like any other call.
        call.cost_usd = sum_cost(results)
        call.attempts = sum(r.attempts for r in results)
        call.upstream_s += time.perf_counter() - t0
        call.response_headers.setdefault("x-gatewise-deployment", call.deployment.id)
        answer = msgspec.structs.replace(answer, model=name, usage=usage)
        if call.stream:
            return await stream_completion(call, answer)
        return answer

    @staticmethod
    def _parallel(call: Call, name: str, results: Sequence[ModelResult]) -> ChatCompletion:
        choices: list[Choice] = []
        failed: list[str] = []
        for i, r in enumerate(results):
            c = r.completion
            if r.ok and c is not None and c.choices:
                choices.append(msgspec.structs.replace(c.choices[0], index=i))
            else:
                failed.append(f"{r.model}={type(r.error).__name__ if r.error else 'NoAnswer'}")
        if not choices:
            raise _all_failed(name, results)
        call.response_headers["x-gatewise-models"] = ",".join(r.model for r in results)
        if failed:
            call.response_headers["x-gatewise-failed"] = ",".join(failed)
        call.event("parallel", models=[r.model for r in results], failed=failed)
        return ChatCompletion(id=new_id(), created=int(time.time()), model=name, choices=choices)


def _as_error(r: ModelResult, reason: str) -> GatewayError:
    if isinstance(r.error, GatewayError):
        return r.error
    return ProviderResponseError(f"rejected by the quality gate: {reason}", provider="gatewise",
                                 model=r.model)


def _all_failed(name: str, results: Sequence[ModelResult]) -> AllTargetsFailedError:
    errors = [_as_error(r, "no answer") for r in results]
    return AllTargetsFailedError(f"every model of '{name}' failed: "
                                 + "; ".join(f"{r.model}: {r.error}" for r in results), errors)
