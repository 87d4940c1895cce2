"""Multi-model orchestration: parallel fan-out, consensus, cascades with quality gates, hedging.

Library use takes a `Gateway` (`parallel(gw, "q", models=[...])`, also as `gw.parallel(...)`);
over HTTP an entry of `orchestrations:` in the config is an alias served by
`OrchestrationMiddleware`; `HedgeMiddleware` implements `router.hedge_after_s`.
"""

from gatewise.orchestration.cascade import (
    CascadeResult,
    CascadeStep,
    Check,
    Gate,
    Verdict,
    cascade,
    run_cascade,
)
from gatewise.orchestration.consensus import Candidate, ConsensusResult, consensus, run_consensus
from gatewise.orchestration.hedge import HedgeMiddleware
from gatewise.orchestration.http import OrchestrationMiddleware
from gatewise.orchestration.jsonschema import schema_errors
from gatewise.orchestration.parallel import Branches, ModelResult, ParallelResult, parallel

__all__ = [
    "Branches",
    "Candidate",
    "CascadeResult",
    "CascadeStep",
    "Check",
    "ConsensusResult",
    "Gate",
    "HedgeMiddleware",
    "ModelResult",
    "OrchestrationMiddleware",
    "ParallelResult",
    "Verdict",
    "cascade",
    "consensus",
    "parallel",
    "run_cascade",
    "run_consensus",
    "schema_errors",
]
