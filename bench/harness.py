"""Process plumbing for the benchmark: where the anchor harness lives, starting and always
stopping what the run starts, and reading CPU time and RSS of a process tree from /proc.

Everything the run starts is registered here before it can outlive a failure, and stopped in
reverse order on the way out (normal end, exception, Ctrl-C or SIGTERM). Every child runs in its
own session so that a whole tree (nginx workers, uvicorn, wrk threads) is stopped by one group
signal, and so that its scheduler autogroup can get the same priority as the others: with
autogroups on, `nice` alone does not compare across sessions (see the anchor README).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NICE = os.environ.get("NICE", "-10")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class BenchError(RuntimeError):
    """A stage could not run; the message says what to fix."""


@dataclass(frozen=True)
class Paths:
    anchor: Path  # the perf harness scripts (GW_ANCHOR_PERF)
    work: Path  # its work dir: api key, nginx run dir, LiteLLM venv (GW_ANCHOR_DIR)
    out: Path  # this run's raw results
    python: Path  # the gatewise venv interpreter

    @property
    def litellm_venv(self) -> Path:
        return self.work / "venv"

    @property
    def has_litellm(self) -> bool:
        return (self.litellm_venv / "bin" / "litellm").exists()

    @property
    def gatewise_bin(self) -> Path:
        return self.python.parent / "gatewise"

    @property
    def api_key(self) -> str:
        return (self.work / "api_key.txt").read_text().strip()

    def script(self, rel: str) -> Path:
        return self.anchor / rel


def find_paths(out: Path) -> Paths:
    anchor = Path(os.environ.get("GW_ANCHOR_PERF") or REPO.parent / "shared" / "anchors" / "perf")
    if not (anchor / "run_load.sh").exists():
        raise BenchError(f"anchor perf harness not found at {anchor} (set GW_ANCHOR_PERF)")
    work = Path(os.environ.get("GW_ANCHOR_DIR")
                or Path(os.environ.get("TMPDIR", "/tmp")) / "gatewise-anchor")
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return Paths(anchor.resolve(), work, out, Path(sys.executable))


def ready(out: Path) -> Paths:
    """The tools and the anchor harness every load bench needs, or exit 2 saying what is
    missing: a bench that cannot measure must not print a table as if it had."""
    try:
        check_tools()
        return find_paths(out)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def check_tools() -> None:
    missing = [t for t in ("nginx", "wrk", "hey", "curl", "bc") if not _which(t)]
    if missing:
        raise BenchError(f"missing tools: {' '.join(missing)} "
                         "(apt-get update && apt-get install -y nginx wrk hey curl bc)")


def _which(name: str) -> bool:
    return any((Path(d) / name).exists() for d in os.environ.get("PATH", "").split(os.pathsep))


def set_autogroup(pid: int) -> None:
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(NICE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            status: int = r.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_http(url: str, timeout: float) -> float:
    """Seconds until `url` answers 200; BenchError after `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if http_status(url, 1.0) == 200:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise BenchError(f"{url} not ready after {timeout:.0f}s")


# --- /proc ---------------------------------------------------------------------------------

def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(root: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def tree_cpu_s(root: int) -> float:
    total = 0
    for p in tree(root):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12])  # utime, stime
    return total / CLK_TCK


def cpu_ns(pid: int) -> int:
    """CPU time of a process's live threads in nanoseconds (`/proc/PID/task/*/schedstat`).

    `/proc/PID/stat` counts in clock ticks (10 ms): a round of a few hundred milliseconds
    then reads ±5 % from rounding alone. A thread that has exited is not counted, so this
    suits servers whose threads live as long as they do."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def tree_rss_mib(root: int) -> float:
    """Resident memory of a process and all its descendants (each counted whole)."""
    total = 0
    for p in tree(root):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * PAGE / 2**20


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


# --- lifetime ------------------------------------------------------------------------------

@dataclass
class Lifetime:
    """Stops, in reverse order, everything registered; safe to call `close` twice."""

    _stops: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    log: Callable[[str], None] = print

    def on_exit(self, what: str, stop: Callable[[], None]) -> None:
        self._stops.append((what, stop))

    def close(self) -> None:
        while self._stops:
            what, stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:
                self.log(f"! could not stop {what}: {exc}")


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM/SIGHUP become KeyboardInterrupt, so `finally` blocks stop what was started."""
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def stop_group(pid: int, grace: float = 10.0) -> None:
    """SIGTERM to the process group `pid` leads, then SIGKILL to what is left."""
    if not alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def spawn(argv: Sequence[str | os.PathLike[str]], env: Mapping[str, str], log: Path,
          life: Lifetime, what: str) -> subprocess.Popen[bytes]:
    """A long-running child in its own session, stopped (whole group) when the run ends."""
    with log.open("ab") as f:
        proc = subprocess.Popen([str(a) for a in argv], env=dict(env), stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    life.on_exit(what, lambda: _reap(proc))
    set_autogroup(proc.pid)
    return proc


def _reap(proc: subprocess.Popen[bytes]) -> None:
    stop_group(proc.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def run(argv: Sequence[str | os.PathLike[str]], env: Mapping[str, str], timeout: float,
        log: Path | None = None) -> str:
    """Runs a bounded command in its own session (same priority as the servers) and returns
    its stdout; the whole group is killed if it outlives `timeout` or the run is interrupted."""
    proc = subprocess.Popen([str(a) for a in argv], env=dict(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    set_autogroup(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc.pid, grace=2)
        proc.communicate()
        raise BenchError(f"{Path(str(argv[0])).name} {' '.join(map(str, argv[1:3]))} timed out "
                         f"after {timeout:.0f}s") from None
    except BaseException:
        stop_group(proc.pid, grace=2)
        raise
    text = out.decode(errors="replace")
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {' '.join(map(str, argv))}\n{text}{err.decode(errors='replace')}\n")
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"{Path(str(argv[0])).name} exited {proc.returncode}: {' | '.join(tail)}")
    return text
