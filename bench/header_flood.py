"""Header flood against `gatewise serve` on 127.0.0.1 (issue 9, defect 5): N connections at once
each send one request whose headers total SIZE MiB (one giant header, or many small ones); the
server's RSS is sampled throughout. Before the connection limits, 8 x 64 MiB took the server
from 38 to 578 MB and every request was answered 200; with them each connection gets a 431
after `server.max_header_bytes` and RSS does not move.

    .venv/bin/python bench/header_flood.py [--connections 8] [--mib 64] [--many]

Bounded: every socket operation has a 20 s timeout, the whole run stops within about 60 s, and
the server it starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _attack(port: int, mib: int, many: bool, results: list[str]) -> None:
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + (b"" if many else b"X-Big: "))
            line = b"X-H: v\r\n"
            chunk = line * ((1 << 20) // len(line)) if many else b"a" * (1 << 20)
            for _ in range(mib):
                s.sendall(chunk)
                sent += len(chunk)
            s.sendall(b"\r\n" if many else b"\r\n\r\n")
            outcome = "all sent"
        except OSError as exc:
            outcome = f"cut after {sent >> 20} MiB ({type(exc).__name__})"
        try:
            status = s.recv(200).split(b"\r\n")[0].decode(errors="replace") or "closed"
        except OSError as exc:
            status = type(exc).__name__
    results.append(f"{outcome}: {status}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--many", action="store_true", help="many small headers, not one big one")
    args = ap.parse_args()
    port = _free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as cfg:
        cfg.write("models:\n  m:\n    - model: fake/echo\nserver: {warmup: false}\n")
    gatewise = os.path.join(os.path.dirname(sys.executable), "gatewise")
    proc = subprocess.Popen([gatewise, "serve", "--config", cfg.name, "--port", str(port),
                             "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("the server did not start", file=sys.stderr)
                    return 2
                time.sleep(0.1)
        time.sleep(1.0)
        before = peak = _rss_mb(proc.pid)
        results: list[str] = []
        threads = [threading.Thread(target=_attack, args=(port, args.mib, args.many, results))
                   for _ in range(args.connections)]
        start = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and time.monotonic() - start < 60:
            peak = max(peak, _rss_mb(proc.pid))
            time.sleep(0.02)
        time.sleep(0.5)
        after = _rss_mb(proc.pid)
        kind = "many small headers" if args.many else "one header"
        print(f"{args.connections} x {args.mib} MiB ({kind}): server RSS {before:.0f} MB before, "
              f"peak {peak:.0f} MB, {after:.0f} MB after; {time.monotonic() - start:.1f} s")
        for outcome in sorted(set(results)):
            print(f"  {results.count(outcome)} x {outcome}")
        return 0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.unlink(cfg.name)


if __name__ == "__main__":
    sys.exit(main())
