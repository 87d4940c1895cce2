"""OpenMP's waiting policy is set before llama-cpp-python loads libgomp, and never over a
choice the environment already made (`gatewise.providers.llamacpp.runtime`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("llama_cpp")

_PROBE = ("import os; from gatewise.providers.llamacpp.runtime import import_llama_cpp; "
          "import_llama_cpp(); print(os.environ.get('OMP_WAIT_POLICY'))")


def _policy_seen(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_openmp_waits_passively_by_default() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_seen(env) == "PASSIVE"


def test_an_operator_choice_of_wait_policy_is_kept() -> None:
    assert _policy_seen({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_the_tokenizer_and_the_engine_load_llama_cpp_through_the_runtime() -> None:
    # libgomp reads the policy once, when it loads: an import elsewhere would load it first.
    from pathlib import Path

    src = Path(__file__).resolve().parents[4] / "src" / "gatewise"
    direct = [str(p.relative_to(src)) for p in src.rglob("*.py")
              if p.name != "runtime.py" and ("import llama_cpp" in p.read_text()
                                             or 'import_module("llama_cpp")' in p.read_text())]
    assert direct == []


_LOAD = ("import logging, sys; logging.basicConfig(level=logging.%s, stream=sys.stdout, "
         "format='%%(name)s %%(levelname)s %%(message)s'); "
         "from gatewise.providers.llamacpp.models import resolve_model; "
         "from gatewise.providers.llamacpp.runtime import import_llama_cpp; "
         "import_llama_cpp().Llama(model_path=resolve_model('smollm2-135m').path, "
         "vocab_only=True, verbose=False)")


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_llama_cpp_warnings_go_to_the_gatewise_log_not_raw_stderr(level: str) -> None:
    # Opening a model's vocabulary alone makes llama.cpp warn about a context longer than the
    # (absent) training context: noise that used to open every `gatewise serve` log.
    done = subprocess.run([sys.executable, "-c", _LOAD % level], capture_output=True,
                          text=True, timeout=120, check=True)
    assert "n_ctx_train" not in done.stderr
    warned = [x for x in done.stdout.splitlines() if "n_ctx_train" in x]
    assert warned == ([] if level == "INFO" else
                      [x for x in warned if x.startswith("gatewise.llamacpp DEBUG llama_context:")])
    if level == "DEBUG":
        assert len(warned) == 1
