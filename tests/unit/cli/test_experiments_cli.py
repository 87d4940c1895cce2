"""`gatewise experiments list | report NAME`: the report reads the quality records the
servers wrote to the shared database (SQLite here), as an operator runs it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatewise.cli.main import main
from gatewise.gateway import Gateway
from gatewise.storage.quality import QualityRecord

EXPERIMENT = {"alias": "chat", "metric": "quality", "sticky": "user",
              "variants": [{"name": "control"}, {"name": "small", "model": "small",
                                                 "weight": 2}]}


def _config(tmp_path: Path, database: str = "sqlite") -> Path:
    path = tmp_path / "gatewise.yaml"
    path.write_text(yaml.safe_dump({
        "models": {"chat": [{"model": "fake/chat"}], "small": [{"model": "fake/small"}]},
        "storage": {"state_dir": str(tmp_path / "state"), "database": database},
        "experiments": {"e": EXPERIMENT}}))
    return path


async def _write(config: Path, rows: list[QualityRecord]) -> None:
    async with Gateway(config) as gw:
        await gw.quality.store.add(rows)


def _rows(now: float) -> list[QualityRecord]:
    out = []
    for i in range(30):
        out.append(QualityRecord(request_id=f"c{i}", ts=now - 60, alias="chat",
                                 experiment="e", variant="control", latency_s=1.0,
                                 cost_usd=0.002, scores={"validity": 0.9 - (i % 3) / 100}))
        out.append(QualityRecord(request_id=f"s{i}", ts=now - 60, alias="chat",
                                 experiment="e", variant="small", latency_s=0.4,
                                 cost_usd=0.0005, scores={"validity": 0.7 - (i % 3) / 100},
                                 error_type="ProviderServerError" if i == 0 else None))
    # Older than the default window (7 days): left out.
    out.append(QualityRecord(request_id="old", ts=now - 30 * 86400, alias="chat",
                             experiment="e", variant="small", scores={"validity": 0.0}))
    return out


async def test_the_report_prints_a_row_per_variant_and_the_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    await _write(config, _rows(time.time()))
    assert await _main(["experiments", "report", "e", "-c", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "experiment e: alias chat, metric quality, control control"
    control = next(line.split() for line in out if line.startswith("control "))
    small = next(line.split() for line in out if line.startswith("small "))
    assert control[:5] == ["control", "chat", "30", "0.0%", "0.890"]
    assert small[:5] == ["small", "small", "30", "3.3%", "0.690"]
    assert any(line.startswith("small vs control: small is significantly worse than control "
                               "on quality") for line in out)


async def test_the_json_report_and_since(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    await _write(config, _rows(time.time()))
    assert await _main(["experiments", "report", "e", "-c", str(config), "--json",
                        "--since", "60d"]) == 0
    rep: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert rep["object"] == "experiment.report"
    assert [v["n"] for v in rep["variants"]] == [30, 31]  # the old row is within 60 days
    (cmp,) = rep["comparisons"]
    assert cmp["result"]["test"] == "welch_t" and cmp["result"]["significant"] is True


async def test_list_unknown_names_and_bad_since(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert await _main(["experiments", "list", "-c", str(config)]) == 0
    assert capsys.readouterr().out.strip() == (
        "e: alias chat, sticky user, metric quality: control=chat w1, small=small w2")
    assert await _main(["experiments", "report", "nope", "-c", str(config)]) == 1
    assert "no experiment 'nope' (e)" in capsys.readouterr().err
    assert await _main(["experiments", "report", "e", "-c", str(config),
                        "--since", "yesterday"]) == 1
    assert "'since' must be a duration" in capsys.readouterr().err


async def test_a_memory_database_is_refused_with_the_admin_route_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, database="memory")
    assert await _main(["experiments", "report", "e", "-c", str(config)]) == 1
    assert "GET /admin/experiments/NAME/report" in capsys.readouterr().err


async def _main(argv: list[str]) -> int:
    """`main` runs its own event loop: off this test's loop, in a worker thread."""
    import asyncio

    return await asyncio.to_thread(main, argv)
