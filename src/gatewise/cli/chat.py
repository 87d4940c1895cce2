"""`gatewise chat`: one prompt, streamed to the terminal, with real numbers under `--stats`."""

from __future__ import annotations

import argparse
import sys
from typing import Any


async def chat(args: argparse.Namespace) -> int:
    from gatewise.gateway import Gateway

    prompt = args.prompt
    if prompt is None or prompt == "-":
        if sys.stdin.isatty():
            print("error: give a prompt or pipe one on stdin", file=sys.stderr)
            return 2
        prompt = sys.stdin.read()
    elif not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped.strip():
            prompt = f"{prompt}\n\n{piped}"
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    params: dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    async with Gateway(args.config) as gw:
        if args.no_stream:
            result = await gw.chat(model=args.model, messages=messages, **params)
            print(result.content or "")
            info = result.info
        else:
            stream = gw.stream(model=args.model, messages=messages, **params)
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    sys.stdout.write(chunk.choices[0].delta.content)
                    sys.stdout.flush()
            print()
            info = stream.info  # type: ignore[assignment]
        if args.stats and info is not None:
            u = info.usage
            toks = f"{u.prompt_tokens} in / {u.completion_tokens} out" if u else "usage unknown"
            ttft = f"{info.ttft_s * 1000:.0f} ms" if info.ttft_s is not None else "?"
            total = f"{info.latency_s * 1000:.0f} ms" if info.latency_s is not None else "?"
            print(f"[{info.deployment}] {toks} · first token {ttft} · total {total}",
                  file=sys.stderr)
    return 0
