"""A free port on 127.0.0.1: for a server about to start there, or, left unused, one that
refuses connections."""

from __future__ import annotations

import socket


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port
