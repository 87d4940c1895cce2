"""The `gatewise rag ingest` run's tally and its one-line progress bar on stderr."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Tally:
    """What one `ingest` run did, summed over its groups."""

    total: int
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks: int = 0
    started: float = field(default_factory=time.monotonic)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.added + self.replaced + self.unchanged + self.failed

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.chunks / elapsed if elapsed > 0 else 0.0

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        return (f"documents: {self.added} added, {self.replaced} replaced, {self.unchanged} "
                f"unchanged, {self.failed} failed (of {self.total}); {self.chunks} chunks in "
                f"{elapsed:.1f} s ({_rate(self.rate())} chunks/s)")


class Bar:
    """A one-line progress bar on stderr (redrawn at most 10 times a second): documents done
    of the total, chunks stored (and embedded in the group under way), chunks per second."""

    def __init__(self, tally: Tally, out: TextIO = sys.stderr) -> None:
        self.tally = tally
        self.out = out
        self._last = 0.0
        # The group under way, not yet in the tally: chunks stored and documents done.
        self._chunks = 0
        self._docs = 0

    def partial(self, chunks: int, docs: int = 0) -> None:
        self._chunks, self._docs = chunks, docs
        self()

    def __call__(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        t = self.tally
        width = 30
        done = min(t.done + self._docs, t.total)
        filled = int(width * done / max(t.total, 1))
        chunks = t.chunks + self._chunks
        elapsed = now - t.started
        rate = chunks / elapsed if elapsed > 0 else 0.0
        self.out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{t.total} docs  "
                       f"{chunks} chunks  {_rate(rate)} chunks/s  failed {t.failed}\x1b[K")
        self.out.flush()

    def close(self) -> None:
        self(force=True)
        self.out.write("\n")
        self.out.flush()


def _rate(rate: float) -> str:
    return f"{rate:.1f}" if rate < 10 else f"{rate:.0f}"
