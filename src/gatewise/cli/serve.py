"""`gatewise serve`: the gateway app on uvicorn (see `server/serving.py`), on 127.0.0.1:4000
unless told otherwise; one process, or `--workers N` (`server.workers`) processes sharing the
port under a supervising parent (`server/workers.py`).

Logging comes from `observability.logging` (level, format: text or JSON lines on stderr);
`--log-level` and `--log-format` override it. The config is read first, so a config error is
printed before any handler exists (plainly, by `cli/main.py`); with workers, so is a config
whose limits and budgets the workers could not share."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gatewise.config.loader import ResolvedConfig
    from gatewise.observability.logs import LogFormat


def serve(args: argparse.Namespace) -> int:
    from gatewise.config.loader import load_config
    from gatewise.observability.logs import configure_logging

    cfg = load_config(args.config)
    logs = cfg.config.observability.logging
    level = args.log_level or logs.level
    fmt = args.log_format or logs.format
    host = args.host or cfg.config.server.host
    port = args.port if args.port is not None else cfg.config.server.port
    workers = getattr(args, "workers", None) or cfg.config.server.workers
    # What each worker's gateway reads (shared breakers with several workers).
    cfg.config.server.workers = workers
    warmup = False if args.no_warmup else None
    if workers > 1:
        from gatewise.server.workers import check_shared_state

        notes = check_shared_state(cfg, workers)  # before anything binds or forks
        # The parent forks: no batching handler (it runs a thread) until a worker is born.
        handler = configure_logging(level, fmt, stream=sys.stderr)
    else:
        notes = []
        handler = configure_logging(level, fmt)
    for w in cfg.warnings:
        logging.getLogger("gatewise.config").warning("%s", w)
    for note in notes:  # what stays per worker, by design
        logging.getLogger("gatewise.server").info("%s", note)
    if workers <= 1:
        from gatewise.server.app import create_app
        from gatewise.server.serving import build_server, tune_gc_for_serving

        app = create_app(cfg, warmup=warmup)
        _banner(handler, fmt, cfg, f"http://{host}:{port}/v1", 1)
        server = build_server(app, host=host, port=port, log_level=level)
        tune_gc_for_serving()
        server.run()
        return 0
    return _serve_workers(cfg, workers, host=host, port=port, level=level, fmt=fmt,
                          warmup=warmup, handler=handler)


def _serve_workers(cfg: ResolvedConfig, workers: int, *, host: str, port: int, level: str,
                   fmt: LogFormat, warmup: bool | None, handler: logging.Handler) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from gatewise.observability.logs import configure_logging
    from gatewise.observability.worker_metrics import WorkerMetrics, remove_snapshot
    from gatewise.server.workers import WORKER_HEADER, Supervisor

    # Each worker's metric snapshot, merged by whichever worker answers a scrape.
    run_dir = Path(tempfile.mkdtemp(prefix="gatewise-workers-"))
    parent = os.getpid()

    def worker_main(sock: socket.socket, slot: int) -> int:
        configure_logging(level, fmt)  # a fresh batching handler, with its flushing thread
        from gatewise.server.app import create_app
        from gatewise.server.serving import build_server, tune_gc_for_serving

        app = create_app(cfg, warmup=warmup)
        app.worker_metrics = WorkerMetrics(app.gateway.metrics, run_dir, slot)
        server = build_server(app, host=host, port=port, log_level=level,
                              headers=[(WORKER_HEADER, str(slot))])
        tune_gc_for_serving()
        server.run(sockets=[sock])
        return 0 if server.started else 3  # 3: uvicorn's start-up failure status

    try:
        try:
            supervisor = Supervisor(workers, worker_main, host=host, port=port,
                                    stop_timeout_s=cfg.config.server.shutdown_grace_s,
                                    on_exit=lambda slot: remove_snapshot(run_dir, slot))
        except OSError as exc:  # the port is taken (or the address is not this host's)
            logging.getLogger("gatewise.server").error("cannot listen on %s:%s: %s", host,
                                                       port, exc.strerror or exc)
            return 1
        _banner(handler, fmt, cfg, f"http://{host}:{supervisor.port}/v1", workers)
        return supervisor.run()
    finally:
        if os.getpid() == parent:  # a worker leaves through os._exit, never here
            shutil.rmtree(run_dir, ignore_errors=True)


def _banner(handler: logging.Handler, fmt: str, cfg: ResolvedConfig, url: str,
            workers: int) -> None:
    if fmt == "json":  # every stderr line a JSON object, the banner too (whatever the level)
        handler.handle(logging.makeLogRecord({
            "name": "gatewise.server", "levelno": logging.INFO, "levelname": "INFO",
            "msg": "serving", "aliases": list(cfg.aliases), "url": url,
            **({"workers": workers} if workers > 1 else {})}))
    else:
        more = f" ({workers} workers)" if workers > 1 else ""
        print(f"gatewise serving {', '.join(cfg.aliases) or 'no models'} on {url}{more}",
              file=sys.stderr, flush=True)
