"""`Guardrails` hands every policy's PII and injection guards the same bounded check pool and
the configured size above which a request's checks leave the event loop."""

from __future__ import annotations

import msgspec
import pytest

from gatewise.config.schema import GuardrailsConfig, InjectionGuardConfig
from gatewise.guardrails.build import Guardrails
from gatewise.guardrails.injection import InjectionMiddleware
from gatewise.guardrails.pii import PIIMiddleware
from gatewise.security.events import LogEventSink


def built(raw: dict[str, object]) -> tuple[Guardrails, list[object]]:
    g = Guardrails(msgspec.convert(raw, GuardrailsConfig), events=LogEventSink(), vault_store=None,
                   tools=None)
    assert g.middleware is not None
    return g, [m for chain in (g.middleware._default, *g.middleware._aliases.values())
               for m in chain]


async def test_every_guard_shares_one_pool_and_the_offload_size() -> None:
    g, guards = built({"offload_chars": 300, "check_threads": 1,
                       "default": {"pii": {}, "injection": {}},
                       "aliases": {"names": {"pii": {"ner": True}, "injection": {}}}})
    injection = [m for m in guards if isinstance(m, InjectionMiddleware)]
    pii = [m for m in guards if isinstance(m, PIIMiddleware)]
    assert len(injection) == 2 and len(pii) == 2
    assert all(m.executor is g.checks and m.offload_chars == 300 for m in injection)
    assert all(m._executor is g.checks for m in pii)
    assert sorted(m.offload_chars for m in pii) == [0, 300]  # with NER: always on the pool
    assert g.checks._max_workers == 1
    await g.aclose()


def test_the_defaults_offload_all_but_tiny_requests_to_one_thread() -> None:
    cfg = GuardrailsConfig()
    assert 0 < cfg.offload_chars <= 1024 and cfg.check_threads == 1


async def test_the_embedding_head_is_a_per_policy_choice_and_off_by_default() -> None:
    g, guards = built({"default": {"injection": {"semantic": "auto"}},
                       "aliases": {"strict": {"injection": {"semantic": True}},
                                   "plain": {"injection": {}}}})
    detectors = [m.detector for m in guards if isinstance(m, InjectionMiddleware)]
    assert sorted(str(d._semantic) for d in detectors) == ["False", "True", "auto"]
    assert sorted(sorted(d._head_channels) for d in detectors) == [
        [], ["direct"], ["direct", "indirect"]]
    await g.aclose()


def test_the_embedding_head_setting_is_true_false_or_auto() -> None:
    assert InjectionGuardConfig().semantic is False
    assert msgspec.convert({"semantic": False}, InjectionGuardConfig).semantic is False
    ok = msgspec.convert({"default": {"injection": {"semantic": "auto"}}}, GuardrailsConfig)
    assert ok.default is not None and ok.default.injection is not None
    assert ok.default.injection.semantic == "auto"
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"default": {"injection": {"semantic": "sometimes"}}}, GuardrailsConfig)
