"""Rate limits on sliding 60-second windows (`WindowStore`, shared across replicas on Redis).

- `RateLimitMiddleware` (once per call): the caller's key (`identity.rpm`/`tpm`) and its team
  (`identity.team_rpm`/`team_tpm`). RPM counts 1 per request; TPM counts the estimated prompt
  plus the caller's output cap before sending, then adds the excess if the real usage was
  larger (the estimate is never refunded: windows only grow). A request's windows go to the
  store in one call (`hit_many`: one Redis round trip, not one per window), checked in order
  as separate hits would be: a refusal ends the checks, and the windows admitted before it
  keep the request (a TPM refusal still counts against RPM). A refusal raises
  `RateLimitExceeded` (429) with `retry_after` and OpenAI's `x-ratelimit-*` headers; successes
  carry the same headers on `call.response_headers`.
- `DeploymentLimitMiddleware` (once per attempt, outside retry): a deployment's own rpm/tpm;
  a full deployment raises the retryable `RateLimitedError` so the router moves to another.

A window store that cannot be reached fails open (logged): limits protect capacity, and an
outage of the shared store should not take the gateway down with it. Budgets are the hard cap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gatewise.accounting.usage import (
    TokenCounting,
    collect_stream_text,
    ensure_usage,
    output_limit,
    prompt_estimate,
)
from gatewise.errors import RateLimitedError, RateLimitExceeded
from gatewise.observability.metrics import Counter
from gatewise.pipeline.background import BackgroundTasks
from gatewise.pipeline.core import Call, Handler, Identity
from gatewise.pipeline.stream import ChunkStream
from gatewise.storage.base import WindowResult, WindowStore

if TYPE_CHECKING:
    from gatewise.providers.deployment import Deployment

log = logging.getLogger("gatewise.accounting")

WINDOW_S = 60.0
_BLOCKED_CAP = 10_000


def format_reset(seconds: float) -> str:
    """OpenAI-style duration: `1.5s`, `0s`, `60s`."""
    return f"{max(0.0, round(seconds, 3)):g}s"


def _headers(out: dict[str, str], kind: str, r: WindowResult) -> None:
    out[f"x-ratelimit-limit-{kind}"] = f"{r.limit:g}"
    out[f"x-ratelimit-remaining-{kind}"] = f"{max(0.0, r.limit - r.used):g}"
    out[f"x-ratelimit-reset-{kind}"] = format_reset(r.reset_s)


def _tightest(results: list[WindowResult]) -> WindowResult:
    return min(results, key=lambda r: r.limit - r.used)


def _subject_key(identity: Identity) -> str:
    if identity.key_id is not None:
        return f"rl:key:{identity.key_id}"
    if identity.user is not None:
        return f"rl:user:{identity.tenant}:{identity.user}"
    return f"rl:tenant:{identity.tenant}"


class RateLimitMiddleware(BackgroundTasks):
    def __init__(self, windows: WindowStore, *, tokenizers: TokenCounting,
                 aliases: Mapping[str, list[Deployment]] | None = None,
                 default_max_tokens: int = 0,
                 clock: Callable[[], float] = time.monotonic,
                 rejections: Counter | None = None) -> None:
        """`default_max_tokens`: output tokens assumed for TPM when a request sets no cap
        (0: only the prompt is counted up front; the excess is added after).
        `clock` dates local refusals: a key refused on RPM is refused again locally until its
        window has slid, sparing the shared store a flood of hits that cannot succeed.
        `rejections`: a counter labelled (scope,) counting refusals (`key`, `team`)."""
        super().__init__("updating a rate-limit window")
        self.rejections = rejections
        self.windows = windows
        self.tokenizers = tokenizers
        self.aliases = aliases or {}
        self.default_max_tokens = default_max_tokens
        self.clock = clock
        self._blocked: dict[str, tuple[float, WindowResult]] = {}
        self._store_down = False

    async def __call__(self, call: Call, next: Handler) -> Any:
        ident = call.identity
        rpm, tpm, team_rpm, team_tpm = ident.rpm, ident.tpm, ident.team_rpm, ident.team_tpm
        if rpm is None and tpm is None and team_rpm is None and team_tpm is None:
            return await next(call)
        own = _subject_key(ident)
        team = f"rl:team:{ident.tenant}:{ident.team}" if ident.team is not None else None
        estimate = 0
        if tpm is not None or team_tpm is not None:
            deps = self.aliases.get(call.alias)
            estimate = (prompt_estimate(call, self.tokenizers, deps[0].target if deps else None)
                        + output_limit(call, self.default_max_tokens))
        checks: list[tuple[str, str, int, int]] = []
        if rpm is not None:
            checks.append(("requests", f"{own}:rpm", rpm, 1))
        if team is not None and team_rpm is not None:
            checks.append(("requests", f"{team}:rpm", team_rpm, 1))
        if tpm is not None:
            checks.append(("tokens", f"{own}:tpm", tpm, estimate))
        if team is not None and team_tpm is not None:
            checks.append(("tokens", f"{team}:tpm", team_tpm, estimate))
        # A window refused here recently ends the checks where it stands, sparing the store;
        # the ones before it go to the store together (one round trip), in order.
        local: WindowResult | None = None
        end = len(checks)
        if self._blocked:
            for i, (kind, key, _, _) in enumerate(checks):
                if kind == "requests" and (local := self._locally_blocked(key)) is not None:
                    end = i
                    break
        got: list[WindowResult] = []
        if end:
            try:
                got = await self.windows.hit_many(
                    [(key, amount, limit) for _, key, limit, amount in checks[:end]], WINDOW_S)
            except Exception as exc:
                self._down(exc)
            else:
                self._store_down = False
        results: dict[str, list[WindowResult]] = {"requests": [], "tokens": []}
        tpm_keys: list[str] = []
        for (kind, key, _, _), r in zip(checks, got, strict=False):
            if not r.allowed:
                self._refused(call, key, kind, r, results)
            results[kind].append(r)
            if kind == "tokens":
                tpm_keys.append(key)
        if local is not None:
            self._refused(call, checks[end][1], "requests", local, results)
        headers = call.response_headers
        for kind, rs in results.items():
            if rs:
                _headers(headers, kind, _tightest(rs))
        if not tpm_keys:
            return await next(call)
        result = await next(call)
        if isinstance(result, ChunkStream):
            collect_stream_text(result)
            result.on_finish(lambda c, _e: self.spawn(self._add_excess(c, result, tpm_keys, estimate)))
        else:
            # Off the answer's path, and only when there is something to add (a request
            # without `max_tokens` was estimated on its prompt alone): windows only grow, so
            # until it lands the window is short by this one answer's excess, as for streams.
            excess = self._excess(call, None, estimate)
            if excess > 0:
                self.spawn(self._add(tpm_keys, excess))
        return result

    def _locally_blocked(self, key: str) -> WindowResult | None:
        entry = self._blocked.get(key)
        if entry is None:
            return None
        until, r = entry
        left = until - self.clock()
        if left <= 0:
            del self._blocked[key]
            return None
        return WindowResult(False, r.used, r.limit, left)

    def _refused(self, call: Call, key: str, kind: str, r: WindowResult,
                 results: dict[str, list[WindowResult]]) -> None:
        if kind == "requests" and r.reset_s > 0:
            if len(self._blocked) >= _BLOCKED_CAP:
                self._blocked.clear()
            self._blocked[key] = (self.clock() + r.reset_s, r)
        headers: dict[str, str] = {}
        for k, rs in results.items():
            if rs and k != kind:
                _headers(headers, k, _tightest(rs))
        _headers(headers, kind, r)
        call.response_headers.update(headers)
        scope = "team" if key.startswith("rl:team:") else "key"
        unit = "requests" if kind == "requests" else "tokens"
        if self.rejections is not None:
            self.rejections.inc((scope,))
        call.event("rate_limited", scope=scope, kind=kind)
        raise RateLimitExceeded(
            f"Rate limit reached for this {scope}: {r.limit:g} {unit} per minute. "
            f"Retry in {format_reset(r.reset_s)}.",
            retry_after=r.reset_s, headers=headers)

    def _down(self, exc: Exception) -> None:
        if not self._store_down:
            self._store_down = True
            log.warning("rate-limit store unavailable (%s); not limiting", type(exc).__name__)

    def _excess(self, call: Call, stream: ChunkStream | None, estimate: int) -> int:
        """Tokens the call used beyond what its TPM hit counted (0 when none, or unknown)."""
        usage = ensure_usage(call, stream, self.tokenizers)
        if usage is None:
            return 0
        return max(0, usage.prompt_tokens + usage.completion_tokens - estimate)

    async def _add_excess(self, call: Call, stream: ChunkStream | None, keys: list[str],
                          estimate: int) -> None:
        excess = self._excess(call, stream, estimate)
        if excess > 0:
            await self._add(keys, excess)

    async def _add(self, keys: list[str], excess: int) -> None:
        for key in keys:
            try:
                await self.windows.add(key, excess, WINDOW_S)
            except Exception as exc:
                self._down(exc)


class DeploymentLimitMiddleware(BackgroundTasks):
    """A deployment's own rpm/tpm, checked on every attempt; place it outside retry so a full
    deployment moves the router on instead of being retried in place."""

    def __init__(self, windows: WindowStore, *, tokenizers: TokenCounting | None = None,
                 rejections: Counter | None = None) -> None:
        """`rejections`: a counter labelled (scope,), counting full deployments as
        `deployment` (the router then moves on: not a refusal the caller sees)."""
        super().__init__("updating a rate-limit window")
        self.windows = windows
        self.tokenizers = tokenizers
        self.rejections = rejections

    async def __call__(self, call: Call, next: Handler) -> Any:
        dep = call.deployment
        if dep is None or (dep.rpm is None and dep.tpm is None):
            return await next(call)
        key = f"rl:dep:{dep.id}"
        estimate = 0
        try:
            if dep.rpm is not None:
                r = await self.windows.hit(f"{key}:rpm", 1, dep.rpm, WINDOW_S)
                if not r.allowed:
                    self._full(dep, "requests", r)
            if dep.tpm is not None:
                estimate = prompt_estimate(call, self.tokenizers, dep.target) + output_limit(call, 0)
                r = await self.windows.hit(f"{key}:tpm", estimate, dep.tpm, WINDOW_S)
                if not r.allowed:
                    self._full(dep, "tokens", r)
        except RateLimitedError:
            raise
        except Exception as exc:
            log.warning("rate-limit store unavailable (%s); not limiting %s", type(exc).__name__,
                        dep.id)
            return await next(call)
        result = await next(call)
        if dep.tpm is None:
            return result
        if isinstance(result, ChunkStream):
            if self.tokenizers is not None:
                collect_stream_text(result)
            result.on_finish(lambda c, _e: self.spawn(self._add_excess(c, result, key, estimate)))
        else:
            await self._add_excess(call, None, key, estimate)
        return result

    def _full(self, dep: Deployment, kind: str, r: WindowResult) -> None:
        if self.rejections is not None:
            self.rejections.inc(("deployment",))
        call_kind = "requests" if kind == "requests" else "tokens"
        raise RateLimitedError(f"deployment {dep.id} is at its {call_kind}-per-minute limit",
                               provider=dep.target.provider, model=dep.target.model,
                               retry_after=r.reset_s)

    async def _add_excess(self, call: Call, stream: ChunkStream | None, key: str,
                          estimate: int) -> None:
        usage = call.usage if self.tokenizers is None else ensure_usage(call, stream,
                                                                          self.tokenizers)
        if usage is None:
            return
        excess = usage.prompt_tokens + usage.completion_tokens - estimate
        if excess > 0:
            try:
                await self.windows.add(f"{key}:tpm", excess, WINDOW_S)
            except Exception as exc:
                log.warning("rate-limit store unavailable (%s)", type(exc).__name__)

