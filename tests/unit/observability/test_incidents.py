"""Incidents: one metric, one call event and one structured log line each, frequent ones
throttled. Breaker transitions and recovery times: `tests/unit/resilience/test_breaker.py`."""

from __future__ import annotations

import logging

import pytest

from gatewise.observability.incidents import IncidentRecorder
from tests.unit.resilience.support import FakeClock, chat_call


def test_an_incident_is_a_metric_an_event_and_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    inc = IncidentRecorder()
    call = chat_call()
    call.attempts = 2
    with caplog.at_level(logging.WARNING, logger="gatewise.incident"):
        inc.record("failover", call=call, deployment="chat:a", error_type="ProviderServerError",
                   to="backup")
    assert inc.counter.get(("failover", "chat", "chat:a", "ProviderServerError")) == 1
    assert call.events == [("failover", {"alias": "chat", "deployment": "chat:a",
                                         "error_type": "ProviderServerError", "attempts": 2,
                                         "to": "backup"})]
    (rec,) = caplog.records
    assert rec.getMessage() == "failover"
    assert (rec.incident, rec.deployment, rec.error_type, rec.provider_attempts, rec.to,  # type: ignore[attr-defined]
            rec.request_id) == ("failover", "chat:a", "ProviderServerError", 2, "backup",  # type: ignore[attr-defined]
                                call.request_id)
    assert "hi" not in str(rec.__dict__)  # never the prompt


def test_frequent_log_lines_are_throttled_but_counted(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    inc = IncidentRecorder(clock=clock, log_interval_s=1.0)
    with caplog.at_level(logging.WARNING, logger="gatewise.incident"):
        for _ in range(50):
            inc.record("retry_budget_exhausted", deployment="d", error_type="E")
        clock.advance(1.0)
        inc.record("retry_budget_exhausted", deployment="d", error_type="E")
        inc.record("retry_budget_exhausted", deployment="other", error_type="E")
    lines = caplog.records
    assert len(lines) == 3
    assert lines[1].suppressed == 49  # type: ignore[attr-defined]
    assert inc.counter.get(("retry_budget_exhausted", "none", "d", "E")) == 51

