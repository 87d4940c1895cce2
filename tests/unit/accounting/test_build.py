"""Accounting built from config: which middleware each stage gets, and start/close."""

from __future__ import annotations

from typing import Any

from gatewise.accounting.budgets import BudgetMiddleware
from gatewise.accounting.build import Accounting
from gatewise.accounting.middleware import AccountingMiddleware
from gatewise.accounting.ratelimit import DeploymentLimitMiddleware, RateLimitMiddleware
from gatewise.config.loader import ResolvedConfig, parse_config, resolve_config
from gatewise.storage.factory import open_stores


def _config(**extra: Any) -> ResolvedConfig:
    cfg, w = parse_config({"models": {"echo": [{"model": "fake/echo", **extra.pop("dep", {})}]},
                           "storage": {"database": "memory"}, **extra})
    return resolve_config(cfg, None, {}, w)


async def test_enabled_accounting_bills_every_call_and_limits_identified_ones() -> None:
    config = _config()
    stores = open_stores(config)
    acc = Accounting(config, stores)
    assert [type(m) for m in acc.per_call] == [AccountingMiddleware]
    assert [type(m) for m in acc.per_identity] == [RateLimitMiddleware, BudgetMiddleware]
    assert acc.per_attempt == []  # no deployment has rpm/tpm
    assert acc.journal is None  # memory storage keeps no journal
    await acc.start()
    await acc.aclose()
    await stores.aclose()


async def test_disabled_accounting_keeps_rate_limits_and_deployment_limits() -> None:
    config = _config(accounting={"enabled": False}, dep={"rpm": 10})
    stores = open_stores(config)
    acc = Accounting(config, stores)
    assert acc.per_call == []
    assert [type(m) for m in acc.per_identity] == [RateLimitMiddleware]
    assert [type(m) for m in acc.per_attempt] == [DeploymentLimitMiddleware]
    await acc.aclose()
    await stores.aclose()
