"""`gatewise serve`: the gateway app on uvicorn (see `server/serving.py`), one process, on
127.0.0.1:4000 unless told otherwise.

Logging comes from `observability.logging` (level, format: text or JSON lines on stderr);
`--log-level` and `--log-format` override it. The config is read first, so a config error is
printed before any handler exists (plainly, by `cli/main.py`)."""

from __future__ import annotations

import argparse
import logging
import sys


def serve(args: argparse.Namespace) -> int:
    from gatewise.config.loader import load_config
    from gatewise.observability.logs import configure_logging
    from gatewise.server.app import create_app
    from gatewise.server.serving import build_server

    cfg = load_config(args.config)
    logs = cfg.config.observability.logging
    level = args.log_level or logs.level
    fmt = args.log_format or logs.format
    handler = configure_logging(level, fmt)
    for w in cfg.warnings:
        logging.getLogger("gatewise.config").warning("%s", w)
    app = create_app(cfg, warmup=False if args.no_warmup else None)
    host = args.host or cfg.config.server.host
    port = args.port if args.port is not None else cfg.config.server.port
    url = f"http://{host}:{port}/v1"
    if fmt == "json":  # every stderr line a JSON object, the banner too (whatever the level)
        handler.handle(logging.makeLogRecord({
            "name": "gatewise.server", "levelno": logging.INFO, "levelname": "INFO",
            "msg": "serving", "aliases": list(cfg.aliases), "url": url}))
    else:
        print(f"gatewise serving {', '.join(cfg.aliases) or 'no models'} on {url}",
              file=sys.stderr, flush=True)
    build_server(app, host=host, port=port, log_level=level).run()
    return 0
