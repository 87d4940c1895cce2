"""The three servers a run talks to: the nginx fake upstream, the gatewise server and the
LiteLLM proxy. Each is registered with the run's `Lifetime` before it can outlive a failure."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness import (
    NICE,
    BenchError,
    Lifetime,
    Paths,
    alive,
    free_port,
    port_busy,
    run,
    set_autogroup,
    spawn,
    stop_group,
    wait_http,
)

UPSTREAM_PORT = 18080  # the anchor's LiteLLM config.yaml names this port


@dataclass(frozen=True)
class Server:
    name: str
    pid: int
    base: str  # http://127.0.0.1:PORT
    ready_s: float

    @property
    def chat_url(self) -> str:
        return f"{self.base}/v1/chat/completions"


def script_env(paths: Paths, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GW_ANCHOR_DIR=str(paths.work), NICE=NICE, OUTDIR=str(paths.out),
               LITELLM_LOCAL_MODEL_COST_MAP="True", UPSTREAM_PORT=str(UPSTREAM_PORT))
    env.update(extra)
    return env


def start_upstream(paths: Paths, life: Lifetime) -> Server:
    if port_busy(UPSTREAM_PORT):
        raise BenchError(f"127.0.0.1:{UPSTREAM_PORT} is already in use; the anchor config needs "
                         "that port for the fake upstream (stop whatever holds it)")
    pid_file = paths.work / "run" / "nginx.pid"
    pid_file.unlink(missing_ok=True)
    life.on_exit("nginx upstream", lambda: _stop_nginx(paths, pid_file))
    t0 = time.monotonic()
    run(["bash", paths.script("start_upstream.sh")], script_env(paths), 30,
        log=paths.out / "services.log")
    pid = int(pid_file.read_text())
    base = f"http://127.0.0.1:{UPSTREAM_PORT}"
    wait_http(f"{base}/v1/models", 10)
    return Server("nginx", pid, base, time.monotonic() - t0)


def _stop_nginx(paths: Paths, pid_file: Path) -> None:
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(BenchError):
        run(["bash", paths.script("stop_upstream.sh")], script_env(paths), 15)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    stop_group(pid, grace=3)  # a master that ignored QUIT (nginx is its own group leader)


def start_gatewise(paths: Paths, life: Lifetime) -> Server:
    port = free_port()
    config = paths.script("litellm/config.yaml")
    env = script_env(paths, LITELLM_MASTER_KEY=paths.api_key)
    proc = spawn(["nice", "-n", NICE, paths.gatewise_bin, "serve", "--config", config,
                  "--host", "127.0.0.1", "--port", str(port)],
                 env, paths.out / "gatewise_server.log", life, "gatewise server")
    base = f"http://127.0.0.1:{port}"
    try:
        ready = wait_http(f"{base}/healthz", 60)
    except BenchError:
        raise BenchError(f"gatewise did not start; see {paths.out / 'gatewise_server.log'}") from None
    if proc.poll() is not None:
        raise BenchError(f"gatewise exited {proc.returncode}; see {paths.out}/gatewise_server.log")
    return Server("gatewise", proc.pid, base, ready)


def start_litellm(paths: Paths, life: Lifetime) -> Server:
    label = "litellm_bench"
    pid_file = paths.work / "run" / f"{label}.pid"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.unlink(missing_ok=True)
    port = free_port()

    def stop() -> None:
        if pid_file.exists():
            stop_group(int(pid_file.read_text()))

    life.on_exit("LiteLLM proxy", stop)
    t0 = time.monotonic()
    run(["bash", paths.script("litellm/start.sh")],
        script_env(paths, PORT=str(port), LABEL=label, LITELLM_MASTER_KEY=paths.api_key),
        150, log=paths.out / "services.log")
    pid = int(pid_file.read_text())
    set_autogroup(pid)
    return Server("litellm", pid, f"http://127.0.0.1:{port}", time.monotonic() - t0)
