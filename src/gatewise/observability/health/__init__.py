"""Health: component checks in the background (providers, stores, the local model, quotas,
the API), the per-component status document behind `/readyz`, and the
`gatewise_component_up` gauge alerts are written against. `monitor.py` schedules and keeps
results; `probes.py` builds the checks from a gateway's parts."""

from gatewise.observability.health.monitor import (
    KINDS,
    ComponentStatus,
    HealthMonitor,
    Probe,
    Result,
    describe_error,
)
from gatewise.observability.health.probes import build_health

__all__ = ["KINDS", "ComponentStatus", "HealthMonitor", "Probe", "Result", "build_health",
           "describe_error"]
