"""Aliases → deployments, and the choice among them.

The strategy here is weighted random over deployments that can serve; the resilience issue
adds latency/cost/usage strategies and cool-downs behind the same `choose` method.
"""

from __future__ import annotations

import random

from gatewise.config.loader import Deployment, ResolvedConfig
from gatewise.errors import ConfigError, ModelNotFoundRequestError


class Router:
    def __init__(self, resolved: ResolvedConfig, *, seed: int | None = None) -> None:
        self._resolved = resolved
        self._aliases = resolved.aliases
        self._direct: dict[str, Deployment | None] = {}
        self._rng = random.Random(seed)

    @property
    def default_model(self) -> str | None:
        return self._resolved.default_model

    def aliases(self) -> list[str]:
        return list(self._aliases)

    def candidates(self, model: str) -> list[Deployment]:
        deps = self._aliases.get(model)
        if deps is not None:
            return deps
        if model not in self._direct:
            self._direct[model] = self._resolved.direct(model)
        dep = self._direct[model]
        if dep is None:
            raise ModelNotFoundRequestError(
                f"The model '{model}' does not exist or is not configured on this gateway",
                param="model",
            )
        return [dep]

    def choose(self, deps: list[Deployment]) -> Deployment:
        if len(deps) == 1:
            dep = deps[0]
            if dep.problem is None:
                return dep
            raise ConfigError(f"deployment '{dep.id}' cannot serve: {dep.problem}")
        usable = [d for d in deps if d.problem is None]
        if not usable:
            raise ConfigError(f"no deployment of '{deps[0].alias}' can serve: "
                              + "; ".join(f"{d.id}: {d.problem}" for d in deps))
        if len(usable) == 1:
            return usable[0]
        return self._rng.choices(usable, weights=[d.weight for d in usable])[0]
