"""`gatewise repl`: a terminal timeline of every AI step (Textual; the `repl` extra).

    gatewise repl                                   # in process, the embedded model
    gatewise repl --config gatewise.yaml            # in process, a config file
    gatewise repl --url http://127.0.0.1:4000 --key sk-...   # a running gateway
    gatewise repl --offline                         # the embedded model only, whatever the steps say
    gatewise repl --pipeline examples/repl/pipeline.yaml

Textual is imported only here, when the command runs; without it the command says which extra
to install. The history lives in `<state dir>/repl/history.db`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

INSTALL_HINT = "gatewise repl needs Textual: pip install 'gatewise[repl]'"


def add_parser(sub: Any) -> None:
    r = sub.add_parser("repl", help="a terminal timeline of every step of each call")
    r.add_argument("--config", "-c", help="run in process on this gatewise.yaml")
    r.add_argument("--url", help="a running gateway's base URL (instead of in process)")
    r.add_argument("--key", help="its API key (default: $GATEWISE_API_KEY)")
    r.add_argument("--offline", action="store_true",
                   help="in process on the embedded model only (every step uses it)")
    r.add_argument("--pipeline", "-p", help="pipeline YAML (default: one answer step)")
    r.add_argument("--model", "-m", help="the answer step's model (alias)")
    r.add_argument("--system", "-s", help="system prompt")
    r.add_argument("--state-dir", help="where the history lives (default: the config's)")
    r.add_argument("--no-history", action="store_true", help="do not persist this session")


def run(args: argparse.Namespace) -> int:
    try:
        import textual  # noqa: F401  (the extra's presence, checked before anything starts)
    except ImportError:
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return 2
    from gatewise.config.loader import load_config
    from gatewise.config.secrets import process_env
    from gatewise.gateway import Gateway

    from .app import ReplApp
    from .backends import Backend, HttpBackend, InProcessBackend
    from .history import History
    from .pipeline import DEFAULT_PIPELINE, PipelineRunner, load_pipeline

    if args.url and (args.config or args.offline):
        print("error: --url talks to a running gateway; --config/--offline run one in process",
              file=sys.stderr)
        return 2
    spec = load_pipeline(args.pipeline) if args.pipeline else DEFAULT_PIPELINE
    backend: Backend
    if args.url:
        key = args.key or process_env().get("GATEWISE_API_KEY")
        backend = HttpBackend(args.url, key)
        state_dir = load_config(None).state_dir
    else:
        config = load_config(None if args.offline else args.config)
        backend = InProcessBackend(Gateway(config),
                                   "offline · embedded model" if args.offline
                                   else f"in process · {config.file or 'embedded model'}")
        state_dir = config.state_dir
    runner = PipelineRunner(spec, backend, offline=args.offline)
    if args.model:
        runner.answer_model = args.model
    history = None if args.no_history else \
        History(Path(args.state_dir or state_dir) / "repl" / "history.db")
    ReplApp(backend, runner, history, system=args.system).run()
    return 0
