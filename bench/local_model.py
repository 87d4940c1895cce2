"""Gateway overhead on the embedded model: `gw.chat(model="local")` against llama.cpp's own
`Llama.create_chat_completion` on the same GGUF, same prompt, same sampling, same max_tokens.

Both sides run greedy (temperature 0, fixed seed) with the same llama.cpp settings the engine
uses (n_ctx, n_batch, threads), so they generate the same tokens; a round where the token counts
differ is reported and left out. Rounds alternate which side goes first, and each side is timed
right next to the other, so drift on a shared machine hits both; the figure is the median of
the per-round ratios, because single generations on a busy machine vary far more than 2 %.
Both models stay loaded and warm (prompt prefix cached after the first call on each side, the
same on both).

Prints one `JSON {...}` line. Run with the gatewise venv's python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

PROMPT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a long, detailed story about a robot who learns to paint."},
]
SEED = 42
SAMPLING = {"temperature": 0.0, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.0}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=96)
    a = ap.parse_args()

    import llama_cpp

    from gatewise.gateway import Gateway
    from gatewise.providers.llamacpp.models import resolve_model

    t0 = time.perf_counter()
    gw = Gateway()
    await gw.warmup()
    gw_load = time.perf_counter() - t0
    local = resolve_model("smollm2-135m")
    spec = local.spec
    t0 = time.perf_counter()
    llm: Any = llama_cpp.Llama(model_path=local.path, n_ctx=spec.n_ctx, n_batch=spec.n_batch,
                          n_threads=spec.n_threads, n_threads_batch=spec.n_threads,
                          seed=SEED, verbose=False)
    raw_load = time.perf_counter() - t0

    async def via_gateway() -> tuple[float, int, int, str]:
        t = time.perf_counter()
        r = await gw.chat(model="local", messages=PROMPT, max_tokens=a.max_tokens, seed=SEED,
                          temperature=SAMPLING["temperature"], top_p=SAMPLING["top_p"])
        dt = time.perf_counter() - t
        u = r.usage
        assert u is not None
        return dt, u.prompt_tokens, u.completion_tokens, r.content or ""

    def direct() -> tuple[float, int, int, str]:
        t = time.perf_counter()
        r: Any = llm.create_chat_completion(messages=PROMPT, max_tokens=a.max_tokens, seed=SEED,
                                            **SAMPLING)
        dt = time.perf_counter() - t
        u = r["usage"]
        return dt, u["prompt_tokens"], u["completion_tokens"], r["choices"][0]["message"]["content"]

    warm_gw, warm_raw = await via_gateway(), direct()
    rounds: list[dict[str, Any]] = []
    for i in range(a.rounds):
        if i % 2 == 0:
            g, r = await via_gateway(), direct()
        else:
            r = direct()
            g = await via_gateway()
        rounds.append({"gw_s": g[0], "raw_s": r[0], "gw_prompt": g[1], "raw_prompt": r[1],
                       "gw_tokens": g[2], "raw_tokens": r[2], "same_text": g[3] == r[3],
                       "ratio": g[0] / r[0]})
    ok = [x for x in rounds if x["gw_tokens"] == x["raw_tokens"]]
    res: dict[str, Any] = {
        "max_tokens": a.max_tokens, "gw_load_s": gw_load, "raw_load_s": raw_load,
        "warm": {"gw_s": warm_gw[0], "raw_s": warm_raw[0]},
        "rounds": rounds, "matched_rounds": len(ok),
        "tokens": ok[0]["raw_tokens"] if ok else None,
        "prompt_tokens": {"gw": warm_gw[1], "raw": warm_raw[1]},
    }
    if ok:
        res["gw_median_s"] = statistics.median(x["gw_s"] for x in ok)
        res["raw_median_s"] = statistics.median(x["raw_s"] for x in ok)
        ratios = [x["ratio"] for x in ok]
        res["overhead_pct"] = (statistics.median(ratios) - 1) * 100
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        res["ratio_quartiles"] = [q[0], q[2]]
        res["overhead_pct_of_medians"] = (res["gw_median_s"] / res["raw_median_s"] - 1) * 100
        res["overhead_pct_of_minimums"] = (min(x["gw_s"] for x in ok)
                                           / min(x["raw_s"] for x in ok) - 1) * 100
    await gw.aclose()
    llm.close()
    print("JSON " + json.dumps(res), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
