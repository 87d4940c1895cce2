"""Layered, offline prompt-injection defence: normalisation, heuristics, similarity to known
attacks and a local classifier trained at first use on attack data shipped in packages.

Public names: `InjectionDetector`, `Verdict`, `InjectionMiddleware`. Importing this package
reads no data and trains nothing; the first scan (or `warm_up`) does, in a few seconds."""

from gatewise.guardrails.injection.detector import InjectionDetector, InjectionModel, Verdict
from gatewise.guardrails.injection.middleware import CONTEXT_METADATA_KEY, CONTEXT_NAMES, InjectionMiddleware

__all__ = ["CONTEXT_METADATA_KEY", "CONTEXT_NAMES", "InjectionDetector", "InjectionMiddleware",
           "InjectionModel", "Verdict"]
