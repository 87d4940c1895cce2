"""`gatewise serve`: the gateway app on uvicorn (see `server/serving.py`), one process, on
127.0.0.1:4000 unless told otherwise."""

from __future__ import annotations

import argparse
import logging
import sys


def serve(args: argparse.Namespace) -> int:
    from gatewise.config.loader import load_config
    from gatewise.server.app import create_app
    from gatewise.server.serving import build_server

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg = load_config(args.config)
    for w in cfg.warnings:
        logging.getLogger("gatewise.config").warning("%s", w)
    app = create_app(cfg, warmup=False if args.no_warmup else None)
    host = args.host or cfg.config.server.host
    port = args.port if args.port is not None else cfg.config.server.port
    print(f"gatewise serving {', '.join(cfg.aliases) or 'no models'} on http://{host}:{port}/v1",
          file=sys.stderr, flush=True)
    build_server(app, host=host, port=port, log_level=args.log_level).run()
    return 0
