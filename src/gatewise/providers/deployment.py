"""`Deployment`: one model on one provider target under an alias, with its limits and prices.

It sits with the providers, below the pipeline, because every stage of a call speaks of it
(`Call.deployment`, the router's strategies, accounting's prices and limits, hedging), while
only `config.loader` builds it: keeping it in the loader made all of them depend on loading.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatewise.config.schema import Prices
from gatewise.providers.base import Target


@dataclass(slots=True)
class Deployment:
    """One place an alias can be served: a ready target plus routing and pricing facts.
    `problem` says why it cannot serve (e.g. a missing key) without failing the whole load."""

    alias: str
    id: str
    target: Target
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    prices: Prices | None = None
    problem: str | None = None
    # `api_key: vault:<name>`: the key lives encrypted in the credential vault and is fetched
    # (cached, use-counted, rotation-aware) per attempt instead of once at load.
    credential: str | None = None
