"""The REPL under test: a real in-process `Gateway` (or a real server) in front of the fake
OpenAI upstream speaking the real wire format; the app driven by Textual's headless pilot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual")

from gatewise.cli.repl.app import ReplApp
from gatewise.cli.repl.backends import Backend, InProcessBackend
from gatewise.cli.repl.history import History
from gatewise.cli.repl.pipeline import DEFAULT_PIPELINE, PipelineRunner, PipelineSpec
from gatewise.config.loader import parse_config, resolve_config
from gatewise.gateway import Gateway
from tests.fakes.openai_fake import make_app
from tests.fakes.server import FakeServer


@pytest.fixture(scope="package")
def upstream() -> Iterator[FakeServer]:
    """The package's own fake (its notes say when a stream was aborted)."""
    with FakeServer(make_app) as srv:
        yield srv


def gateway_config(upstream: FakeServer, state_dir: Path) -> dict[str, Any]:
    dep = {"api_base": upstream.url + "/v1", "api_key": "sk-upstream",
           "prices": {"input": 1.0, "output": 2.0}}
    return {
        "models": {
            "gpt": [{"model": "openai/gpt-4o-mini", **dep}],
            "other": [{"model": "openai/gpt-4o", **dep}],
            "flaky": [{"model": "openai/gpt-fail-503", **dep}],
            "broken": [{"model": "openai/gpt-fail-400", **dep}],
            "endless": [{"model": "openai/gpt-endless", **dep}],
            "slow": [{"model": "openai/gpt-slow", **dep}],
        },
        "default_model": "gpt",
        "router": {"retry": {"max_retries": 0}, "breaker": {"enabled": False},
                   "fallbacks": {"flaky": ["gpt"]}},
        "storage": {"state_dir": str(state_dir)},
        "health": {"probe_providers": False},
    }


def in_process(upstream: FakeServer, state_dir: Path) -> InProcessBackend:
    cfg, warnings = parse_config(gateway_config(upstream, state_dir))
    return InProcessBackend(Gateway(resolve_config(cfg, None, {}, warnings)), "in process · test")


def make_app_for(backend: Backend, tmp_path: Path, spec: PipelineSpec = DEFAULT_PIPELINE,
                 **kw: Any) -> ReplApp:
    runner = PipelineRunner(spec, backend)
    history = History(tmp_path / "repl" / "history.db")
    return ReplApp(backend, runner, history, conversation=kw.pop("conversation", "c_test"), **kw)
