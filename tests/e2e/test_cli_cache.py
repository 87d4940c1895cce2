"""`gatewise cache warm | stats | invalidate` as a user runs them: real processes on one
SQLite state folder (the cache on the shared store, as a server with the same config reads
it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml


def _config(tmp_path: Path, store: str = "shared") -> Path:
    path = tmp_path / f"gatewise-{store}.yaml"
    path.write_text(yaml.safe_dump({
        "models": {"m": [{"model": "fake/echo"}], "n": [{"model": "fake/echo"}]},
        "storage": {"state_dir": str(tmp_path / "state")},
        "cache": {"enabled": True, "store": store},
    }))
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return _config(tmp_path)


def gw(config: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "gatewise.cli.main", *args, "--config",
                          str(config)], capture_output=True, text=True, timeout=60)
    if ok:
        assert out.returncode == 0, out.stderr
    return out


def _request(text: str, model: str = "m", **extra: Any) -> str:
    return json.dumps({"model": model, "temperature": 0,
                       "messages": [{"role": "user", "content": text}], **extra})


def test_warm_then_stats_then_invalidate(config: Path, tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join([
        _request("What are the opening hours?", team="red", metadata={"cache_tags": "faq"}),
        _request("How do I reset my password?", team="red", metadata={"cache_tags": "faq"}),
        _request("What are the opening hours?", team="red"),  # the same request again
        _request("Which plans exist?", model="n", team="blue"),
        "{not json",
    ]) + "\n")
    first = gw(config, "cache", "warm", str(requests), "--concurrency", "1", ok=False)
    assert first.returncode == 1  # one line failed
    assert "stored 3, skipped 1, failed 1 (of 5)" in first.stdout
    assert "line 5: not JSON" in first.stderr
    assert "[" in first.stderr and "5/5" in first.stderr  # the progress bar
    again = gw(config, "cache", "warm", str(requests), "--no-progress", ok=False)
    assert "stored 0, skipped 4, failed 1" in again.stdout

    stats = json.loads(gw(config, "cache", "stats", "--json").stdout)
    rows = {(r["team"], r["alias"]): r for r in stats["data"]}
    assert rows[("red", "m")]["misses"] == 2 and rows[("red", "m")]["hits"] == 4
    assert rows[("blue", "n")]["misses"] == 1
    assert stats["total"]["hits"] == 5
    table = gw(config, "cache", "stats").stdout
    assert "hit rate" in table and "red" in table

    assert gw(config, "cache", "invalidate", "--tag", "faq", "--team", "blue").stdout \
        .strip() == "deleted 0"
    assert gw(config, "cache", "invalidate", "--tag", "faq").stdout.strip() == "deleted 2"
    assert gw(config, "cache", "invalidate", "--alias", "n*").stdout.strip() == "deleted 1"
    refill = gw(config, "cache", "warm", str(requests), "--no-progress", "--concurrency", "1",
                ok=False)
    assert "stored 3, skipped 1" in refill.stdout
    assert gw(config, "cache", "invalidate", "--all", "--team", "red").stdout.strip() \
        != "deleted 0"
    bad = gw(config, "cache", "invalidate", "--key", "nope", ok=False)
    assert bad.returncode == 2 and "cache_key" in bad.stderr


def test_an_in_process_cache_points_to_the_admin_api(tmp_path: Path) -> None:
    out = gw(_config(tmp_path, "memory"), "cache", "stats", ok=False)
    assert out.returncode == 1 and "/admin/cache" in out.stderr
