"""Bounded label cardinality: each family holds at most `max_series` label sets; later ones are
folded into one overflow series labelled "other", so a client choosing label values (a model
name, a user) cannot grow what Prometheus stores."""

from __future__ import annotations

import secrets

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import GatewayError
from gatewise.observability.metrics import Counter, GatewayMetrics, Gauge, Histogram
from gatewise.transport.base import ConnectError, HttpRequest, HttpResponse


def test_a_counter_past_its_cap_folds_new_label_sets_into_other() -> None:
    c = Counter("gatewise_x_total", "x", ("model", "status"), max_series=3)
    for i in range(10):
        c.inc((f"m{i}", "200"))
    c.inc(("m0", "200"), 5)  # an existing series keeps counting on its own
    assert len(c.values) == 4
    assert c.get(("m0", "200")) == 6
    assert c.get(("other", "other")) == 7
    assert sum(c.values.values()) == 15  # nothing is lost, only folded


def test_a_gauge_and_a_histogram_fold_the_same_way() -> None:
    g = Gauge("gatewise_g", "g", ("subject",), max_series=2)
    for i in range(5):
        g.set((f"s{i}",), float(i))
    assert set(g.values) == {("s0",), ("s1",), ("other",)}
    h = Histogram("gatewise_h_seconds", "h", ("model",), buckets=(1.0,), max_series=2)
    for i in range(6):
        h.observe(0.5, (f"m{i}",))
    assert set(h.series) == {("m0",), ("m1",), ("other",)}
    assert h.count(("other",)) == 4


def test_every_family_of_the_gateway_has_a_cap() -> None:
    for family in GatewayMetrics().families():
        assert 0 < family.max_series <= 10_000, family.name


class RefusingTransport:
    """Every upstream connection is refused (direct `provider/model` calls reach here)."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        raise ConnectError("connection refused")

    async def open_stream(self, request: HttpRequest) -> HttpResponse:
        raise ConnectError("connection refused")

    async def aclose(self) -> None:
        return None


def _series(gw: Gateway) -> dict[str, int]:
    return {f.name: len(f.series if isinstance(f, Histogram) else f.values)
            for f in gw.metrics.families()}


def _gateway() -> Gateway:
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo"}]},
        "allow_direct_models": ["ollama"],
        "storage": {"database": "memory"},
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": True}},
        "cache": {"enabled": True},
    })
    return Gateway(resolve_config(cfg, None, {}, w),
                   transport=RefusingTransport())  # type: ignore[arg-type]


async def test_random_model_names_do_not_grow_any_family() -> None:
    async with _gateway() as gw:
        await gw.chat("hi", model="m")
        with pytest.raises(GatewayError):
            await gw.chat("hi", model="warm-up-unknown")
        gw.metrics.render()
        before = _series(gw)
        for _ in range(300):
            with pytest.raises(GatewayError) as info:
                await gw.chat("hi", model=f"made-up-{secrets.token_hex(6)}")
            assert info.value.status == 404
        text = gw.metrics.render()
        assert _series(gw) == before
    assert "made-up-" not in text
    assert 'gatewise_errors_total{endpoint="chat",model="unknown",' \
           'error_type="ModelNotFoundRequestError"} 301' in text


async def test_random_direct_model_names_stay_bounded() -> None:
    """`ollama/<anything>` is a direct model the router may serve: it keeps at most 256 such
    names, so the per-model families stop growing there."""
    async with _gateway() as gw:
        for _ in range(300):
            with pytest.raises(GatewayError):
                await gw.chat("hi", model=f"ollama/rnd-{secrets.token_hex(6)}")
        gw.metrics.render()
        worst = max(_series(gw).values())
    assert worst <= 256 + 2
