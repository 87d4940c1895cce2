"""llama.cpp thread settings for the embedded model, on a quiet machine and beside busy
neighbours: why `gatewise.providers.llamacpp.runtime` picks its defaults.

Each setting runs in a fresh process (libgomp reads `OMP_WAIT_POLICY` once, when it loads): the
offline default GGUF reads a 61-token chat prompt, then generates 20 tokens one at a time,
8 rounds; the table shows the median and the worst round of each. Settings:

- `old`: every core generating and reading the prompt, OpenMP spinning (gatewise before);
- `default`: gatewise now (all cores but one generating, all reading the prompt, passive);
- `spin`: the same thread counts with OpenMP spinning;
- `1/1`: one thread for both.

Conditions: `quiet` (nothing else started here), then `N busy` with N processes that spin on
the CPU (as many as there are cores): a stand-in for the event loop, guardrail threads,
another worker, or any other program on the machine. The busy processes stop by themselves.

    .venv/bin/python bench/local_threads.py [--rounds 8] [--busy N]

Standalone, never part of the test run; about a minute. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from gatewise.providers.llamacpp.runtime import cpu_count, default_batch_threads, default_threads

_PROBE = r"""
import json, sys, time
from gatewise.providers.llamacpp.models import resolve_model
from gatewise.providers.llamacpp.runtime import import_llama_cpp
llama_cpp = import_llama_cpp()
n_threads, n_batch, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model = resolve_model("smollm2-135m")
llm = llama_cpp.Llama(model_path=model.path, n_ctx=4096, n_batch=512, n_threads=n_threads,
                      n_threads_batch=n_batch, verbose=False)
text = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nGive me a title for a ticket about login failures "
        "after password reset. The customer wrote three paragraphs about how the reset email "
        "arrived late and the link expired.<|im_end|>\n<|im_start|>assistant\n")
toks = llm.tokenize(text.encode(), special=True)
prompt, token = [], []
for _ in range(rounds):
    llm.reset()
    t = time.perf_counter(); llm.eval(toks); prompt.append(time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(20):
        llm.eval([toks[-1]])
    token.append((time.perf_counter() - t) / 20)
print("JSON " + json.dumps({"tokens": len(toks), "prompt": prompt, "token": token}))
"""


@contextmanager
def busy(n: int, seconds: float) -> Iterator[None]:
    procs = [subprocess.Popen([sys.executable, "-c",
                               f"import time\nend = time.time() + {seconds}\n"
                               "while time.time() < end: pass"]) for _ in range(n)]
    try:
        time.sleep(0.3)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def measure(threads: int, batch: int, policy: str, rounds: int) -> dict[str, float]:
    env = dict(os.environ, OMP_WAIT_POLICY=policy)
    out = subprocess.run([sys.executable, "-c", _PROBE, str(threads), str(batch), str(rounds)],
                         env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    got = json.loads(next(x for x in out.splitlines() if x.startswith("JSON "))[5:])
    return {"prompt_med": statistics.median(got["prompt"]) * 1000,
            "prompt_max": max(got["prompt"]) * 1000,
            "token_med": statistics.median(got["token"]) * 1000,
            "token_max": max(got["token"]) * 1000, "tokens": got["tokens"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--busy", type=int, default=cpu_count(), help="busy processes (default: cores)")
    a = ap.parse_args()
    cpus = cpu_count()
    settings = [("old", cpus, cpus, "ACTIVE"),
                ("default", default_threads(cpus), default_batch_threads(cpus), "PASSIVE"),
                ("spin", default_threads(cpus), default_batch_threads(cpus), "ACTIVE"),
                ("1/1", 1, 1, "PASSIVE")]
    rows = []
    for condition, n in (("quiet", 0), (f"{a.busy} busy", a.busy)):
        for name, threads, batch, policy in settings:
            with busy(n, 120.0) if n else _nothing():
                r = measure(threads, batch, policy, a.rounds)
            rows.append((condition, f"{name} ({threads}/{batch} {policy.lower()})", r))
    print(f"{cpus} cores, load average now {os.getloadavg()[0]:.1f}; prompt "
          f"{rows[0][2]['tokens']:.0f} tokens; {a.rounds} rounds each; ms")
    head = ("condition", "setting (generate/prompt threads, wait)", "prompt med", "prompt max",
            "token med", "token max")
    print(" | ".join(head))
    for condition, name, r in rows:
        print(f"{condition} | {name} | {r['prompt_med']:.0f} | {r['prompt_max']:.0f} | "
              f"{r['token_med']:.1f} | {r['token_max']:.1f}")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    main()
