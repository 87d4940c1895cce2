"""The `gatewise` command as a user runs it, in a subprocess, on the in-process fake provider."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = """
models:
  echo:
    - model: fake/echo
  broken:
    - model: fake/fail-401
default_model: echo
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "gatewise.yaml"
    p.write_text(CONFIG)
    return p


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatewise.cli.main", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_chat_streams_the_answer_and_prints_stats(config: Path) -> None:
    out = _run("chat", "hello there", "-c", str(config), "--stats", stdin="")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Hello! You said: hello there"
    assert "[echo:fake/echo] 2 in / 5 out" in out.stderr and "first token" in out.stderr


def test_chat_reads_the_prompt_from_stdin(config: Path) -> None:
    out = _run("chat", "-c", str(config), "--no-stream", stdin="piped words\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Hello! You said: piped words"


def test_chat_reports_provider_errors_without_traceback(config: Path) -> None:
    out = _run("chat", "x", "-m", "broken", "-c", str(config), stdin="")
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr


def test_models_lists_aliases_and_deployments(config: Path) -> None:
    out = _run("models", "-c", str(config))
    assert out.returncode == 0
    assert out.stdout.splitlines() == ["echo (default)", "  - fake/echo", "broken",
                                       "  - fake/fail-401"]


def test_check_validates_each_key_and_fails_on_a_bad_one(config: Path) -> None:
    out = _run("check", "-c", str(config))
    assert out.returncode == 1
    assert "ok      echo:fake/echo" in out.stdout
    assert "FAILED  broken:fake/fail-401" in out.stdout


def test_check_names_the_config_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  a:\n    - model: fake/echo\n      wieght: 2\n")
    out = _run("check", "-c", str(bad), "--offline")
    assert out.returncode == 1
    assert f"{bad}: models.a[0].wieght: unknown key 'wieght'" in out.stderr
