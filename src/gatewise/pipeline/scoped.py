"""`IdentityScoped`: middleware that only an identified caller pays for.

Access control, rate limits and budgets all key off who is calling; a caller with no key, team
or user (the library's own, an unauthenticated local gateway) skips all three in one check
instead of paying a hop through each. `gateway.py` wraps them in it.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

from gatewise.pipeline.core import Call, Handler, Middleware, run_nested


class IdentityScoped:
    def __init__(self, inner: Sequence[Middleware]) -> None:
        self._inner = tuple(inner)

    def __call__(self, call: Call, next: Handler) -> Coroutine[Any, Any, Any]:
        # A plain `def` (`pipeline.core.Middleware`): no coroutine of its own either way.
        ident = call.identity
        if ident.permissions is None and ident.key_id is None and ident.team is None \
                and ident.user is None:
            return next(call)
        return run_nested(self._inner, call, next)
