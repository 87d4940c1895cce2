"""A free port on 127.0.0.1: for a server about to start there, or, left unused, one that
refuses connections.

Chosen below the kernel's ephemeral range (`ip_local_port_range`), not with `bind(0)`: a port
the kernel handed out from that range is free only until the next outgoing connection of any
process on the machine takes it as its local port (a second `gatewise serve` opening its Redis
and PostgreSQL pools), and the server that was meant to bind it fails with EADDRINUSE (seen once
in `test_live_log_replicas`). Below the range, only another listener can take it, and a random
pick makes two tests choosing the same one unlikely (1 in ~20,000)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000


def _ephemeral_low() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default; elsewhere bind(0) is the fallback below


def free_port() -> int:
    high = _ephemeral_low()
    if high - _LOWEST >= 1_000:
        for _ in range(50):
            port = random.randrange(_LOWEST, high)
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port
