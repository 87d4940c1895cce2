"""Multi-model orchestration: parallel fan-out, consensus, cascades with quality gates.

Library use takes a `Runner`, the gateway (`parallel(gw, "q", models=[...])`, also as
`gw.parallel(...)`); over HTTP an entry of `orchestrations:` in the config is an alias served
by `OrchestrationMiddleware`. Hedging (`router.hedge_after_s`) lives in `gatewise.resilience.hedge`.
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
from gatewise.orchestration.middleware import OrchestrationMiddleware
from gatewise.orchestration.parallel import Branches, ModelResult, ParallelResult, parallel

__all__ = [
    "Branches",
    "Candidate",
    "CascadeResult",
    "CascadeStep",
    "Check",
    "ConsensusResult",
    "Gate",
    "ModelResult",
    "OrchestrationMiddleware",
    "ParallelResult",
    "Verdict",
    "cascade",
    "consensus",
    "parallel",
    "run_cascade",
    "run_consensus",
]
