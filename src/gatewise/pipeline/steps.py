"""Live steps of one call (the "timeline"): what a listener on `Call.listener` hears.

Middleware record their steps with `call.event(name, **data)` whether or not anyone listens
(logs and audits read `call.events`). A few steps exist only for a listener and are built only
when one is set, so an unobserved call pays one attribute check for them:

- `cache` (the response cache): `result` hit | semantic_hit | miss | bypass, `similarity` for a
  semantic hit;
- `attempt` (the provider call, once per attempt): `alias`, `deployment`, `provider`, `model`,
  `attempt` (1, 2, ...), `reason` first | retry | failover (another deployment of the alias) |
  fallback (another alias, a simplified prompt) | hedge;
- `attempt_failed`: `deployment`, `error_type`, `status`, `next`: the step the gateway took
  next (retry, failover, fallback, error, ...);
- `first_token`: `ttft_ms`;
- `done`: `usage` {prompt_tokens, completion_tokens, cached_tokens}, `cost_usd`, `latency_ms`,
  `ttft_ms`, `deployment`, `provider`, `model`, `finish_reason`;
- `error`: `type`, `status`, `message` (what the caller's error body says, never more).

Every step a listener hears carries `t_ms`, milliseconds since the call started
(`Call.event`). No step carries prompt or completion text or a PII value (the PII guard's step
holds entity types and counts).

`listen(call, on_step)` installs a listener the way every front end does (the server for
`x-gatewise-steps: 1`, the library's `on_step=`, the REPL): through a `StepRelay`, which holds
an `attempt_failed` until the gateway's next step says what it did about it. `watch(call,
result)`, called on the chain's result, adds `first_token` and `done` (or `error`) to the
timeline; `failed(call, exc)` reports a call that raised.

An orchestration (parallel, consensus, cascade) serves one call with several branch calls of
its own. When the parent call has a listener, each branch call gets one too
(`listen_branch`): its steps (route, attempts, failures, then `first_token` and `done` with
the branch's usage and cost, or `error`, from `branch_ended`) reach the parent's listener
with `branch` {`index`, `model`, and `judge: true` for a judge's call} and `t_ms` on the
parent's clock, each branch's failed attempts relayed on their own (branches run at once).
They go to the listener only, never into the parent's `call.events` (its logs and traces
describe the parent). The parent's own `done` sums every branch: a reader adding up costs
skips the steps that carry `branch`.
"""

from __future__ import annotations

import time
from typing import Any

from gatewise.errors import ConfigError, GatewayError, ProviderError
from gatewise.pipeline.core import Call, StepListener
from gatewise.pipeline.stream import Cancelled, ChunkStream
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.stream import ChatCompletionChunk

# Steps after which a new attempt's `reason` is known: the latest one before it wins.
_REASONS = {"retry": "retry", "hedge": "hedge", "fallback": "fallback",
            "simplified_prompt": "fallback"}


class StepRelay:
    """Hands a call's steps to `on_step` in order, holding a failed attempt back until the
    next step (a retry, a failover, the final error) names what came of it (`next`)."""

    __slots__ = ("_held", "on_step")

    def __init__(self, on_step: StepListener) -> None:
        self.on_step = on_step
        self._held: dict[str, Any] | None = None

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        if "branch" in data:  # a branch call's step, already relayed by its own relay
            self.on_step(name, data)
            return
        if name == "attempt_failed":
            self._release("attempt_failed")  # two in a row: the first one failed over
            self._held = data
            return
        self._release(_next_of(name, data))
        self.on_step(name, data)

    def _release(self, next_step: str) -> None:
        held = self._held
        if held is not None:
            self._held = None
            held["next"] = next_step
            self.on_step("attempt_failed", held)


def _next_of(name: str, data: dict[str, Any]) -> str:
    """What the gateway did after a failed attempt, named by its next step."""
    if name == "failover" and "to" in data and "reason" in data:
        return "fallback"  # the fallback middleware's failover: to another alias
    return name


def listen(call: Call, on_step: StepListener) -> StepRelay:
    """Makes `on_step` hear `call`'s steps from now on."""
    relay = StepRelay(on_step)
    call.listener = relay
    return relay


class _BranchSteps:
    """A branch call's steps, marked with the branch and timed on the parent's clock."""

    __slots__ = ("branch", "on_step", "started")

    def __init__(self, on_step: StepListener, branch: dict[str, Any], started: float) -> None:
        self.on_step = on_step
        self.branch = branch
        self.started = started

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        data["branch"] = self.branch
        data["t_ms"] = round((time.perf_counter() - self.started) * 1000, 3)
        self.on_step(name, data)


def listen_branch(parent: Call, branch: Call, index: int, model: str, *,
                  judge: bool = False) -> None:
    """Makes `parent`'s listener hear `branch`'s steps (nothing when nobody listens)."""
    on_step = parent.listener
    if on_step is None:
        return
    info: dict[str, Any] = {"index": index, "model": model}
    if judge:
        info["judge"] = True
    listen(branch, _BranchSteps(on_step, info, parent.started))


def branch_ended(call: Call, completion: ChatCompletion | None, error: BaseException | None,
                 *, latency_s: float, cost_usd: float | None) -> None:
    """The end of a listened-to branch call: `first_token` and `done`, or `error`. A branch
    runs inside the parent's chain, below its telemetry and accounting, so its latency and
    cost are the orchestration's own figures; a whole answer's first token is the answer."""
    if call.listener is None:
        return
    if error is not None:
        failed(call, error)
        return
    ttft = call.ttft if call.ttft is not None else latency_s
    call.event("first_token", ttft_ms=_ms(ttft))
    finish = completion.choices[0].finish_reason if completion and completion.choices else None
    data = done_data(call, finish)
    if call.usage is None and completion is not None:
        data["usage"] = _usage(completion.usage)
    data["latency_ms"] = _ms(latency_s)
    data["ttft_ms"] = _ms(ttft)
    if data["cost_usd"] is None:
        data["cost_usd"] = cost_usd
    call.event("done", **data)


def attempt_reason(call: Call, number: int) -> str:
    """Why attempt `number` runs: the latest retry/failover/fallback/hedge step since the
    last attempt, or `first`."""
    if number <= 1:
        return "first"
    for name, data in reversed(call.events):
        if name == "attempt":
            break
        if name == "failover":
            return "fallback" if "reason" in data else "failover"
        reason = _REASONS.get(name)
        if reason is not None:
            return reason
    return "retry"


def report_attempt(call: Call, number: int) -> None:
    """Attempt `number` (1 for the call's first) is about to start."""
    dep = call.deployment
    assert dep is not None, "the router runs before the provider call"
    target = dep.target
    call.event("attempt", alias=call.alias, deployment=dep.id, provider=target.provider,
               model=target.model, attempt=number, reason=attempt_reason(call, number))


def report_attempt_failed(call: Call, exc: BaseException) -> None:
    dep = call.deployment
    status = exc.status if isinstance(exc, GatewayError) else None
    data: dict[str, Any] = {"deployment": dep.id if dep is not None else None,
                            "error_type": type(exc).__name__, "status": status}
    if isinstance(exc, ProviderError) and exc.retryable:
        data["retryable"] = True
    call.event("attempt_failed", **data)


def error_data(exc: BaseException) -> dict[str, Any]:
    """`type`, `status` and `message` of an error step: the message an error body would carry
    (`GatewayError.public_message`); nothing for errors that are not the gateway's own."""
    if isinstance(exc, Cancelled):
        return {"type": "Cancelled", "status": 499, "message": "the caller cancelled the call"}
    if isinstance(exc, ConfigError):
        return {"type": type(exc).__name__, "status": exc.status,
                "message": "the gateway's configuration is wrong"}
    if isinstance(exc, GatewayError):
        return {"type": type(exc).__name__, "status": exc.status,
                "message": exc.public_message()}
    return {"type": "InternalError", "status": 500, "message": "internal error"}


def failed(call: Call, exc: BaseException) -> None:
    """The call raised: its `error` step (a cancelled call reports none: nobody waits)."""
    if call.listener is not None and isinstance(exc, Exception):
        call.event("error", **error_data(exc))


def watch(call: Call, result: Any) -> Any:
    """Adds the end of the timeline to the chain's `result`: `done` for a completion now; for
    a stream, `first_token` when the first token passes and `done` (or `error`) when it ends."""
    if call.listener is None:
        return result
    if isinstance(result, ChunkStream):
        watcher = _StreamWatch(call)
        result.observe(watcher.chunk)
        result.on_finish(watcher.finish)
    elif isinstance(result, ChatCompletion):
        finish = result.choices[0].finish_reason if result.choices else None
        call.event("done", **done_data(call, finish))
    return result


def _usage(u: Usage | None) -> dict[str, Any]:
    return {"prompt_tokens": u.prompt_tokens if u is not None else None,
            "completion_tokens": u.completion_tokens if u is not None else None,
            "cached_tokens": u.cached_tokens if u is not None else None}


def done_data(call: Call, finish_reason: str | None) -> dict[str, Any]:
    dep = call.deployment
    latency = call.latency
    return {
        "usage": _usage(call.usage),
        "cost_usd": call.cost_usd,
        "latency_ms": _ms(latency),
        "ttft_ms": _ms(call.ttft),
        "deployment": dep.id if dep is not None else None,
        "provider": dep.target.provider if dep is not None else None,
        "model": dep.target.model if dep is not None else None,
        "finish_reason": finish_reason,
        "cache": call.response_headers.get("x-gatewise-cache"),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class _StreamWatch:
    __slots__ = ("call", "finish_reason", "first")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.first = False
        self.finish_reason: str | None = None

    def chunk(self, chunk: ChatCompletionChunk) -> None:
        call = self.call
        if not self.first and call.ttft is not None:
            self.first = True
            call.event("first_token", ttft_ms=_ms(call.ttft))
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason

    def finish(self, call: Call, error: BaseException | None) -> None:
        if error is None:
            if not self.first and call.ttft is not None:
                self.first = True
                call.event("first_token", ttft_ms=_ms(call.ttft))
            call.event("done", **done_data(call, self.finish_reason))
        elif isinstance(error, Exception) and not isinstance(error, Cancelled):
            call.event("error", **error_data(error))  # not for a consumer that went away
