"""`gatewise serve | chat | models | check | keys | teams | budgets | usage | audit | cache |
rag | experiments | eval | repl | maintenance | prompts | conversations`: thin wrappers over
the library, the server and the governance stores."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from gatewise import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gatewise", description="One front door to every LLM.")
    p.add_argument("--version", action="version", version=f"gatewise {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the OpenAI-compatible gateway server")
    s.add_argument("--config", "-c", help="gatewise.yaml or a LiteLLM config.yaml")
    s.add_argument("--host", default=None, help="default 127.0.0.1 (or server.host)")
    s.add_argument("--port", type=int, default=None, help="default 4000 (or server.port)")
    s.add_argument("--workers", type=int, default=None, choices=range(1, 65), metavar="N",
                   help="processes sharing the port (default 1, or server.workers)")
    s.add_argument("--no-warmup", action="store_true", help="load local models on first use")
    s.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                   help="default observability.logging.level (info)")
    s.add_argument("--log-format", default=None, choices=["text", "json"],
                   help="default observability.logging.format (text); json: one object a line")

    c = sub.add_parser("chat", help="send one prompt and stream the answer")
    c.add_argument("prompt", nargs="?", help="the prompt (read from stdin when piped)")
    c.add_argument("-m", "--model", help="alias or provider/model (default: config default)")
    c.add_argument("-s", "--system", help="system prompt")
    c.add_argument("--config", "-c")
    c.add_argument("--max-tokens", type=int)
    c.add_argument("--temperature", type=float)
    c.add_argument("--no-stream", action="store_true")
    c.add_argument("--stats", action="store_true", help="print tokens and timings at the end")

    m = sub.add_parser("models", help="list the model aliases and their deployments")
    m.add_argument("--config", "-c")

    k = sub.add_parser("check", help="validate config and each provider's key")
    k.add_argument("--config", "-c")
    k.add_argument("--offline", action="store_true", help="validate config only, no calls")

    from gatewise.cli import repl

    repl.add_parser(sub)

    from gatewise.cli.admin import add_parsers

    add_parsers(sub)
    from gatewise.cli import cache

    cache.add_parsers(sub)
    from gatewise.cli import rag

    rag.add_parsers(sub)
    from gatewise.cli import eval as eval_cli
    from gatewise.cli import experiments

    experiments.add_parsers(sub)
    eval_cli.add_parsers(sub)
    from gatewise.cli import conversations, maintenance, prompts

    maintenance.add_parsers(sub)
    prompts.add_parsers(sub)
    conversations.add_parsers(sub)
    return p


# Commands that are one coroutine `run(args)` in their own module (imported only when used).
_ASYNC_COMMANDS = {
    "cache": "gatewise.cli.cache", "rag": "gatewise.cli.rag",
    "experiments": "gatewise.cli.experiments", "maintenance": "gatewise.cli.maintenance",
    "prompts": "gatewise.cli.prompts", "conversations": "gatewise.cli.conversations",
    **dict.fromkeys(("keys", "teams", "budgets", "usage", "audit"), "gatewise.cli.admin"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from gatewise.errors import GatewayError

    try:
        if args.command == "serve":
            from gatewise.cli.serve import serve

            return serve(args)
        if args.command == "chat":
            from gatewise.cli.chat import chat

            return asyncio.run(chat(args))
        if args.command == "repl":
            from gatewise.cli import repl

            return repl.run(args)
        if args.command == "models":
            return _models(args)
        if args.command == "check":
            return asyncio.run(_check(args))
        module = _ASYNC_COMMANDS.get(args.command)
        if module is not None:
            run: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = \
                importlib.import_module(module).run
            return asyncio.run(run(args))
        if args.command == "eval":
            from gatewise.cli import eval as eval_cli

            return eval_cli.run(args)
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


def _models(args: argparse.Namespace) -> int:
    from gatewise.config.loader import load_config

    cfg = load_config(args.config)
    for alias, deps in cfg.aliases.items():
        default = " (default)" if alias == cfg.default_model else ""
        print(f"{alias}{default}")
        for d in deps:
            note = f"  [{d.problem}]" if d.problem else ""
            print(f"  - {d.target.ref}{note}")
    return 0


async def _check(args: argparse.Namespace) -> int:
    from gatewise.gateway import Gateway

    gw = Gateway(args.config)
    cfg = gw.config
    print(f"config: {cfg.file or '(built-in default)'}: ok, {len(cfg.aliases)} aliases")
    for w in cfg.warnings:
        print(f"warning: {w}")
    if args.offline:
        await gw.aclose()
        return 0
    failed = 0
    try:
        results = await gw.validate_keys()
    finally:
        await gw.aclose()
    for dep_id, err in results.items():
        if err is None:
            print(f"ok      {dep_id}")
        else:
            failed += 1
            print(f"FAILED  {dep_id}: {err}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
