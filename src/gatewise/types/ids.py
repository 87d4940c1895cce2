"""Ids for requests, completions and connections, cheap enough to make one per call.

They sit with the types, the lowest layer, because every layer names things: the server its
connections, the pipeline its calls, adapters and orchestration the completions they build.
"""

from __future__ import annotations

import itertools
import os


class _Ids:
    """Unique ids without a syscall per id: a random per-process prefix and a counter (ids
    only need to be unique and unguessable across processes, not secret)."""

    __slots__ = ("_next", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._next = itertools.count(1).__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next():012x}"


unique_suffix = _Ids()


def new_id(prefix: str = "chatcmpl") -> str:
    return f"{prefix}-{unique_suffix()}"
