"""`error_body`: which refusals carry `Retry-After`, and with what value."""

from __future__ import annotations

import json

import pytest

from gatewise.errors import (
    AllTargetsFailedError,
    CircuitOpenError,
    GatewayError,
    ProviderServerError,
)
from gatewise.server.errors import error_body


def _retry_after(exc: GatewayError) -> str | None:
    status, headers, body = error_body(exc, "req_1")
    assert status == exc.status and json.loads(body)["error"]["code"] == exc.code
    values = [v.decode() for k, v in headers if k == b"retry-after"]
    assert len(values) <= 1
    return values[0] if values else None


@pytest.mark.parametrize(("wait", "header"), [
    (0.3, "1"),  # never 0: a client told 0 would spin
    (1.0, "1"),
    (1.01, "2"),  # rounded up: coming back early would only meet the open breaker again
    (29.2, "30"),
    (None, "1"),  # unknown: the shortest sensible wait, but always a Retry-After
    (float("inf"), "1"),
])
def test_a_circuit_open_503_says_when_the_next_probe_may_go(wait: float | None,
                                                            header: str) -> None:
    assert _retry_after(CircuitOpenError("open", retry_after=wait)) == header


def test_a_fallback_chain_of_open_breakers_says_when_the_first_reopens() -> None:
    chain = AllTargetsFailedError("every target failed", [
        CircuitOpenError("a", retry_after=7.2), CircuitOpenError("b", retry_after=2.5)])
    assert chain.status == 503 and _retry_after(chain) == "3"
    unknown = AllTargetsFailedError("every target failed", [
        CircuitOpenError("a", retry_after=7.2), CircuitOpenError("b")])
    assert _retry_after(unknown) == "1"


def test_a_chain_ending_at_an_open_breaker_after_another_failure_says_one_second() -> None:
    """The first target failed otherwise (and may be back at once): the shortest wait."""
    mixed = AllTargetsFailedError("every target failed", [
        ProviderServerError("500"), CircuitOpenError("b", retry_after=2.5)])
    assert (mixed.status, mixed.code) == (503, "circuit_open") and _retry_after(mixed) == "1"


def test_other_failures_carry_no_retry_after() -> None:
    ending_otherwise = AllTargetsFailedError("every target failed", [
        CircuitOpenError("a", retry_after=2.5), ProviderServerError("500")])
    assert ending_otherwise.status == 502 and _retry_after(ending_otherwise) is None
    assert _retry_after(ProviderServerError("500")) is None
