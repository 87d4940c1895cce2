"""The banking assistant as a plain text loop: one line of transcript in, one reply out.

    python examples/banking_assistant/text_loop.py            # offline: the embedded model
    python examples/banking_assistant/text_loop.py --config my.yaml --tool-choice auto

Each line you type stands for one utterance the speech-to-text produced. The loop ends at
end of input, on `quit`, or when the handler hands the caller to a human: then the hand-off
JSON is printed (on stdout, after the last reply) and the exit status is 3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

# Runnable from anywhere: the repository root makes `examples.banking_assistant` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.banking_assistant.handler import CONFIG, BankingHandler, build_gateway

HANDED_OFF = 3


async def run(config: Path, tool_choice: str, max_failures: int) -> int:
    async with build_gateway(config) as gw:
        await gw.warmup()  # loads the embedded model (and trains the injection guard) now
        handler = BankingHandler(gw, tool_choice=tool_choice,  # type: ignore[arg-type]
                                 max_failures=max_failures)
        print(f"Northbank assistant (conversation {handler.conversation}). "
              "Type what the caller says; 'quit' ends.", flush=True)
        while True:
            line = await asyncio.to_thread(_read)
            if line is None or line.strip().lower() in ("quit", "exit"):
                return 0
            if not line.strip():
                continue
            result = await handler.turn(line.strip())
            for step in result.steps:
                status = "ok" if step.error is None else f"error: {step.error}"
                print(f"  [tool {step.tool}({json.dumps(step.arguments)}) -> {status}]")
            print(f"assistant> {result.reply}", flush=True)
            if result.handoff is not None:
                print(json.dumps(result.handoff.to_json(), indent=2), flush=True)
                return HANDED_OFF


def _read() -> str | None:
    try:
        return input("caller> ")
    except EOFError:
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, default=CONFIG, help="gatewise config (default: %(default)s)")
    p.add_argument("--tool-choice", choices=("route", "auto", "required"), default="route",
                   help="route: the turn's intent picks the tool (small local models); "
                        "auto: the model decides (hosted models)")
    p.add_argument("--max-failures", type=int, default=3,
                   help="consecutive failed turns before a human takes over")
    args = p.parse_args(argv)
    return asyncio.run(run(args.config, args.tool_choice, args.max_failures))


if __name__ == "__main__":
    sys.exit(main())
