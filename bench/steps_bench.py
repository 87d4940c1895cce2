"""What the live steps contract (`gatewise.pipeline.steps`) costs a call, in process.

    .venv/bin/python bench/steps_bench.py            # about 20 s
    .venv/bin/python bench/steps_bench.py --quick    # about 8 s

Three variants of the same call (`Gateway.run` on the shipped `fake/echo` provider, streamed
and not), measured in alternating rounds in one process (each variant first in turn), CPU
microseconds per call: the median of the rounds, and the best round (the steadier figure on a
shared machine):

- `baseline`: the provider call as it was before the contract (no listener check, no `try`):
  `ProviderCall.__call__` replaced by a copy of the code before (`_before` below);
- `no listener`: the code as it is, nobody listening (what every ordinary request runs);
- `listener`: an `on_step` listener installed (the REPL, the console, `x-gatewise-steps`).

The target: `no listener` within noise of `baseline` (ratio ~1.00). The other differences on
the no-listener path (one `is not None` check in `Gateway.run` and in the cache middleware, one
slot on `Call`) run in all three variants, so they are not in the ratio; they are a few dozen
nanoseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.pipeline import steps
from gatewise.pipeline.core import Call
from gatewise.pipeline.provider_call import ProviderCall
from gatewise.pipeline.stream import ChunkStream
from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import Usage
from gatewise.types.validation import chat_request_from_dict


def _gateway() -> Gateway:
    cfg, w = parse_config({"models": {"echo": [{"model": "fake/echo"}]},
                           "default_model": "echo",
                           "observability": {"logging": {"requests": False}}})
    return Gateway(resolve_config(cfg, None, {}, w))


async def _before(self: ProviderCall, call: Call) -> Any:
    """`ProviderCall.__call__` as it was before the steps contract."""
    dep = call.deployment
    assert dep is not None
    target = dep.target
    client = self.pool.client_for(target)
    call.attempts += 1
    req = call.request
    t0 = time.perf_counter()
    if isinstance(req, EmbeddingRequest):
        emb = await client.embed(req, target)
        call.upstream_s += time.perf_counter() - t0
        call.usage = Usage(prompt_tokens=emb.usage.prompt_tokens,
                           total_tokens=emb.usage.total_tokens)
        return emb
    assert isinstance(req, ChatRequest)
    if req.stream:
        stream = ChunkStream(call, client.stream(req, target), req.wants_usage_in_stream)
        await stream.prefetch()
        call.upstream_s += time.perf_counter() - t0
        return stream
    out = await client.chat(req, target)
    call.upstream_s += time.perf_counter() - t0
    call.usage = out.usage
    return out


async def _round(gw: Gateway, n: int, stream: bool, listen: bool) -> float:
    req = chat_request_from_dict({"model": "echo", "stream": stream,
                                  "messages": [{"role": "user", "content": "one two three"}]})
    heard: list[Any] = []

    def on_step(name: str, data: dict[str, Any]) -> None:
        heard.append(name)

    t0 = time.process_time()
    for _ in range(n):
        call = Call("chat", req)
        if listen:
            steps.listen(call, on_step)
        out = await gw.run(call)
        if isinstance(out, ChunkStream):
            async for _chunk in out:
                pass
    return (time.process_time() - t0) / n * 1e6


async def main(quick: bool) -> None:
    n, rounds = (500, 6) if quick else (1000, 12)
    current = ProviderCall.__call__
    original = _before
    async with _gateway() as gw:
        for stream in (False, True):
            await _round(gw, 200, stream, False)  # warm-up
            results: dict[str, list[float]] = {"baseline": [], "no listener": [], "listener": []}
            variants = ["baseline", "no listener", "listener"]
            for r in range(rounds):
                for name in variants[r % 3:] + variants[:r % 3]:  # each goes first in turn
                    ProviderCall.__call__ = original if name == "baseline" else current  # type: ignore[method-assign]
                    results[name].append(await _round(gw, n, stream, name == "listener"))
            ProviderCall.__call__ = current  # type: ignore[method-assign]
            base = statistics.median(results["baseline"])
            print(f"\n{'streamed' if stream else 'non-streamed'} call, {n} calls x {rounds} rounds")
            low = min(results["baseline"])
            print(f"{'variant':<14}{'median us':>10}{'ratio':>8}{'best us':>10}{'ratio':>8}")
            for name, xs in results.items():
                m = statistics.median(xs)
                print(f"{name:<14}{m:>10.1f}{m / base:>8.3f}{min(xs):>10.1f}{min(xs) / low:>8.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    asyncio.run(main(ap.parse_args().quick))
