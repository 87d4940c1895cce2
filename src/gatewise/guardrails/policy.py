"""Which guards run for a call: the caller's key policy, else its team's, else the alias's,
else the default. Each policy becomes a small, fixed chain built once at start-up:

    injection (scan what came in) → tools (offer only registered, permitted tools; validate
    the calls that come back) → PII (mask on the way in, unmask on the way out) → output
    checks (toxicity, code, groundedness on what the model wrote)

Tools sit outside PII so tool-call arguments are validated after they are unmasked (a masked
IBAN would fail the IBAN pattern). A call no policy covers goes straight through; a gateway
with no policy at all does not even get this middleware.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gatewise.config.schema import GuardrailPolicy, GuardrailsConfig
from gatewise.pipeline.core import Call, Handler, Middleware, run_nested

BuildGuards = Callable[[GuardrailPolicy], list[Middleware]]


class GuardrailsMiddleware:
    def __init__(self, config: GuardrailsConfig, build: BuildGuards) -> None:
        cache: dict[int, tuple[Middleware, ...]] = {}

        def chain(policy: GuardrailPolicy | None) -> tuple[Middleware, ...]:
            if policy is None:
                return ()
            if id(policy) not in cache:
                cache[id(policy)] = tuple(build(policy))
            return cache[id(policy)]

        self._config = config
        self._default = chain(config.default)
        self._aliases = {k: chain(v) for k, v in config.aliases.items()}
        self._teams = {k: chain(v) for k, v in config.teams.items()}
        self._keys = {k: chain(v) for k, v in config.keys.items()}

    def wrap_guards(self, wrap: Callable[[Middleware], Middleware]) -> None:
        """Every policy's guards replaced by `wrap(guard)`, once per guard (tracing gives
        each guard its span this way, without the guards knowing)."""
        done: dict[int, Middleware] = {}

        def each(chain: tuple[Middleware, ...]) -> tuple[Middleware, ...]:
            for g in chain:
                if id(g) not in done:
                    done[id(g)] = wrap(g)
            return tuple(done[id(g)] for g in chain)

        self._default = each(self._default)
        self._aliases = {k: each(v) for k, v in self._aliases.items()}
        self._teams = {k: each(v) for k, v in self._teams.items()}
        self._keys = {k: each(v) for k, v in self._keys.items()}

    def guards_for(self, call: Call) -> Sequence[Middleware]:
        ident = call.identity
        if ident.key_id is not None and ident.key_id in self._keys:
            return self._keys[ident.key_id]
        if ident.team is not None and ident.team in self._teams:
            return self._teams[ident.team]
        by_alias = self._aliases.get(call.alias)
        return by_alias if by_alias is not None else self._default

    def policy_for(self, call: Call) -> GuardrailPolicy | None:
        """The policy `guards_for` serves the call with (what masks text the gateway keeps
        or sends on after the call: the same rules as the call's own)."""
        c, ident = self._config, call.identity
        if ident.key_id is not None and ident.key_id in c.keys:
            return c.keys[ident.key_id]
        if ident.team is not None and ident.team in c.teams:
            return c.teams[ident.team]
        return c.aliases.get(call.alias, c.default)

    async def __call__(self, call: Call, next: Handler) -> Any:
        guards = self.guards_for(call)
        if not guards:
            return await next(call)
        return await run_nested(guards, call, next)


def has_policies(config: GuardrailsConfig) -> bool:
    return bool(config.default or config.aliases or config.teams or config.keys)
