"""`gatewise keys | teams | budgets | usage | audit` as a user runs them: real processes, one
SQLite state folder, the audit chain verified and then tampered with."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gatewise.yaml"
    path.write_text(yaml.safe_dump({
        "models": {"m": [{"model": "fake/echo"}]},
        "storage": {"state_dir": str(tmp_path / "state")},
    }))
    return path


def gw(config: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "gatewise.cli.main", *args, "--config",
                          str(config)], capture_output=True, text=True, timeout=60)
    if ok:
        assert out.returncode == 0, out.stderr
    return out


def test_keys_lifecycle_from_the_cli(config: Path) -> None:
    gw(config, "teams", "create", "ops", "--models", "m")
    created = gw(config, "keys", "create", "--name", "bot", "--team", "ops", "--rpm", "30")
    secret = created.stdout.strip()
    assert secret.startswith("sk-gw-")
    key_id = secret.split("-")[2]
    assert "not shown again" in created.stderr
    listing = gw(config, "keys", "list").stdout
    assert key_id in listing and "active" in listing and "team=ops" in listing
    assert secret not in listing
    rotated = gw(config, "keys", "rotate", key_id, "--overlap-hours", "1").stdout.strip()
    assert rotated.startswith("sk-gw-") and rotated != secret
    gw(config, "keys", "revoke", key_id)
    assert f"{key_id}  revoked" in gw(config, "keys", "list").stdout
    assert "ops" in gw(config, "teams", "list").stdout


def test_audit_verify_passes_then_detects_tampering(config: Path, tmp_path: Path) -> None:
    gw(config, "teams", "create", "red")
    gw(config, "keys", "create", "--name", "a", "--team", "red")
    gw(config, "budgets", "create", "team", "red", "--usd", "5", "--period", "month")
    ok = gw(config, "audit", "verify")
    result = json.loads(ok.stdout)
    assert result["ok"] is True and result["checked"] >= 3
    actions = gw(config, "audit", "list").stdout
    assert "team.create" in actions and "key.create" in actions and "budget.create" in actions
    db = sqlite3.connect(tmp_path / "state" / "gatewise.db")
    table = next(name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%audit%'"))
    db.execute(f"UPDATE {table} SET actor = 'someone-else' WHERE seq = 2")
    db.commit()
    db.close()
    bad = gw(config, "audit", "verify", ok=False)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["first_bad_seq"] == 2


def test_usage_report_and_csv_export_from_the_ledger(config: Path) -> None:
    code = (
        "import asyncio, sys\n"
        "from gatewise import Gateway\n"
        "async def main():\n"
        "    gw = Gateway(sys.argv[1])\n"
        "    for _ in range(3):\n"
        "        await gw.chat('hello there', model='m')\n"
        "    await gw.aclose()\n"
        "asyncio.run(main())\n")
    subprocess.run([sys.executable, "-c", code, str(config)], check=True, timeout=60)
    table = gw(config, "usage", "--group-by", "model,outcome").stdout
    assert "m" in table and "success" in table
    out = gw(config, "usage", "--group-by", "model", "--csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows == [{"model": "m", "requests": "3", "prompt_tokens": rows[0]["prompt_tokens"],
                     "completion_tokens": rows[0]["completion_tokens"], "cached_tokens": "0",
                     "cost_usd": "0.000000"}]
    assert int(rows[0]["prompt_tokens"]) > 0 and int(rows[0]["completion_tokens"]) > 0
    bad = gw(config, "usage", "--group-by", "color", ok=False)
    assert bad.returncode == 2 and "cannot group by 'color'" in bad.stderr


def test_the_cli_refuses_what_the_admin_api_refuses_and_writes_nothing(config: Path) -> None:
    """The same input types as `POST /admin/...` (one definition): exit status 2, the flag
    named, checked before the stores are opened."""
    for args, flag in ((["keys", "create", "--name", "bot", "--rpm", "-5"], "--rpm"),
                       (["budgets", "create", "team", "ops", "--usd", "-1"], "--usd"),
                       (["teams", "create", "Ops\x1b[31m"], "team_id")):
        out = gw(config, *args, ok=False)
        assert out.returncode == 2 and f"error: {flag}: " in out.stderr, out.stderr
    assert gw(config, "audit", "list").stdout == ""
