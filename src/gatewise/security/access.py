"""`AccessMiddleware`: may this identity call this kind of endpoint with this model?

Runs once per call, right after authentication: `llm:generate` for chat, `llm:embed` for
embeddings, and the requested model (`request.model`: what the caller named, before an
experiment's variant or routing picks what serves it) must match the key's
`models` and its team's `team_models` when those are non-empty. Entries are exact names or
fnmatch patterns (`gpt-*`, `openai/*`), case-sensitive.

Cost: each distinct allow-list is compiled once (exact names into a set, patterns into one
regex) and cached by the tuple itself, which `KeyManager` keeps for the key's cached
lifetime; a check is a dict lookup plus a set lookup, or one regex match. Denials name the
permission or model, never the key.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from gatewise.errors import ForbiddenError
from gatewise.pipeline.core import Call, Handler, Identity
from gatewise.security.events import SecurityEventSink

_WILDCARD = frozenset("*?[")


class _Matcher:
    __slots__ = ("exact", "pattern")

    def __init__(self, models: tuple[str, ...]) -> None:
        self.exact = frozenset(m for m in models if not _WILDCARD & set(m))
        globs = [fnmatch.translate(m) for m in models if _WILDCARD & set(m)]
        self.pattern = re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None

    def allows(self, model: str) -> bool:
        return model in self.exact or (self.pattern is not None
                                       and self.pattern.match(model) is not None)


class AccessMiddleware:
    def __init__(self, events: SecurityEventSink | None = None, *, max_cached: int = 10_000) -> None:
        self.events = events
        self._max_cached = max_cached
        self._matchers: dict[tuple[str, ...], _Matcher] = {}

    def _allows(self, models: tuple[str, ...], model: str) -> bool:
        m = self._matchers.get(models)
        if m is None:
            if len(self._matchers) >= self._max_cached:
                self._matchers.clear()
            m = self._matchers[models] = _Matcher(models)
        return m.allows(model)

    def may_use(self, ident: Identity, model: str) -> bool:
        """Whether the key's and its team's allow-lists admit `model` (the model check of
        `__call__`, without the permission): what `GET /v1/models` shows a key."""
        return ((not ident.models or self._allows(ident.models, model))
                and (not ident.team_models or self._allows(ident.team_models, model)))

    def _deny(self, call: Call, message: str, **detail: Any) -> ForbiddenError:
        ident = call.identity
        if self.events is not None:
            self.events.emit("access", "deny", request_id=call.request_id, tenant=ident.tenant,
                             key_id=ident.key_id, detail=detail)
        return ForbiddenError(message)

    async def __call__(self, call: Call, next: Handler) -> Any:
        ident = call.identity
        permission = "llm:embed" if call.kind == "embed" else "llm:generate"
        if not ident.can(permission):
            raise self._deny(call, f"this key lacks permission {permission!r}",
                             permission=permission)
        # The model the caller asked for: an A/B experiment may already have pointed
        # `call.alias` at a variant's model, which the caller need not be allowed directly.
        model = call.request.model
        if ident.models and not self._allows(ident.models, model):
            raise self._deny(call, f"model {model!r} is not allowed for this key", model=model)
        if ident.team_models and not self._allows(ident.team_models, model):
            raise self._deny(call, f"model {model!r} is not allowed for this team", model=model)
        return await next(call)
