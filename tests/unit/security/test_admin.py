"""AdminService: the one object the admin API and the CLI call (over memory stores)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gatewise.accounting.build import Accounting
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import KeyNotFoundError, NotConfiguredError, TeamNotFoundError
from gatewise.security.admin import AdminService
from gatewise.security.build import Security
from gatewise.storage.factory import open_stores


@pytest.fixture
async def admin() -> AsyncIterator[AdminService]:
    cfg, w = parse_config({"models": {"echo": [{"model": "fake/echo"}]},
                           "storage": {"database": "memory"}})
    config = resolve_config(cfg, None, {}, w)
    stores = open_stores(config)
    security, accounting = Security(config, stores), Accounting(config, stores)
    yield AdminService(security, accounting)
    await accounting.aclose()
    await security.aclose()
    await stores.aclose()


async def test_missing_keys_and_teams_are_404s_naming_the_path_parameter(
        admin: AdminService) -> None:
    with pytest.raises(KeyNotFoundError) as k:
        await admin.get_key("0123456789ab")
    assert k.value.param == "key_id"
    with pytest.raises(TeamNotFoundError) as t:
        await admin.get_team("ml")
    assert t.value.param == "team_id"
    assert await admin.find_team("ml") is None


async def test_keys_and_teams_round_trip(admin: AdminService) -> None:
    team = await admin.create_team("ml", name="ML", models=["gpt-*"], rpm=None, tpm=None,
                                   actor="t")
    assert await admin.get_team("ml") == team
    secret, rec = await admin.create_key(name="svc", role="member", team="ml", user=None,
                                         models=[], permissions=[], expires_in_s=None,
                                         rpm=None, tpm=None, actor="t")
    assert secret.startswith("sk-gw-") and await admin.get_key(rec.id) == rec
    assert [k.id for k in await admin.list_keys(team="ml")] == [rec.id]
    await admin.revoke_key(rec.id, actor="t")
    await admin.delete_team("ml", actor="t")
    assert await admin.list_teams() == []


async def test_budgets_are_audited_and_show_their_spend(admin: AdminService) -> None:
    rec = await admin.create_budget(scope="team", subject="ml", period="month", limit_usd=5.0,
                                    limit_tokens=None, hard=True, actor="t")
    assert await admin.list_budgets() == [rec]
    assert await admin.budget_spent(rec) == {"usd": 0.0}
    assert await admin.delete_budget(rec.id, actor="t") is True
    assert await admin.delete_budget(rec.id, actor="t") is False
    actions = [r.action for r in await admin.audit(since_seq=0, limit=10)]
    assert actions == ["budget.create", "budget.delete"]
    assert (await admin.verify_audit()).ok


async def test_usage_and_retention_on_an_empty_ledger(admin: AdminService) -> None:
    assert await admin.usage(["team"], since=None, until=None, team=None, key_id=None) == []
    assert await admin.usage_records(since=None, until=None, limit=10, team=None,
                                     key_id=None) == []
    counts = await admin.run_retention(actor="t")
    assert counts["usage"] == 0 and counts["audit"] == 0


async def test_credentials_need_an_encryption_key(admin: AdminService) -> None:
    assert await admin.list_credentials() == []
    with pytest.raises(NotConfiguredError):
        await admin.put_credential("openai", "openai", "sk-x", actor="t",
                                   rotate_every_days=None)
