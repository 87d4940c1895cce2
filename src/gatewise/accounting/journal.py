"""Write-ahead journal for usage records: a `kill -9` loses nothing the client was answered for,
and a replay never counts a request twice.

Layout: `<dir>/<pid>-<random>.jnl` segment files, one line of msgspec JSON (`UsageRecord`) per
record. A live process holds an exclusive `fcntl.flock` on every segment it has open, for as
long as it has it open; the kernel drops the lock when the process dies, however it dies. So
"lock is free" means "its writer is gone", and `replay()` may take the file.

Durability: each record is one `os.write` on an `O_APPEND` fd at record time (a few µs, no
fsync). A crashed *process* loses nothing: the bytes are in the OS page cache. A *power loss*
may lose what the OS had not written back yet (roughly the last `ledger_flush_s` plus the
kernel's writeback delay); pass `fsync=True` to pay an fsync per record instead.

Rotation: when the ledger takes a batch to commit, it `seal()`s the current segment (new
records go to a fresh one) and, once the store has everything, `commit(mark)` deletes the
sealed segments. A crash between the store commit and the delete only means a replay re-sends
records the store skips by `request_id`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import msgspec

from gatewise.storage.base import UsageRecord

log = logging.getLogger("gatewise.accounting")

SUFFIX = ".jnl"


class _Appender(Protocol):
    async def append(self, records: Sequence[UsageRecord], encoded: bytes | None = None) -> int:
        ...


class Journal:
    """One process's journal. Not thread-safe: used from the event loop only."""

    def __init__(self, directory: str | Path, *, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self._encode = msgspec.json.Encoder().encode
        self._fd = -1
        self._path: Path | None = None
        # Sealed segments waiting for their records to reach the store: (mark, fd, path).
        self._sealed: list[tuple[int, int, Path]] = []
        self._mark = 0

    # -- writing (hot path) -------------------------------------------------------------------

    def write(self, record: UsageRecord) -> bytes:
        """Appends one record synchronously and returns its JSON (the ledger sends the same
        bytes to the store in its batch rather than encode the record again); raises OSError
        if the disk refuses."""
        line = self._encode(record)
        fd = self._fd
        if fd < 0:
            fd = self._open_segment()
        os.write(fd, line + b"\n")
        if self.fsync:
            os.fsync(fd)
        return line

    def _open_segment(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(6)}"
        tmp = self.directory / f"{name}.tmp"
        final = self.directory / f"{name}{SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Created under another name and renamed once locked, so a replayer can never
            # take (and delete) a segment between its creation and its lock.
            os.rename(tmp, final)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fd, self._path = fd, final
        return fd

    # -- rotation -----------------------------------------------------------------------------

    def seal(self) -> int:
        """Closes the current segment for writing (records from now on go to a new one) and
        returns a mark; `commit(mark)` deletes every segment sealed up to it."""
        self._mark += 1
        if self._fd >= 0 and self._path is not None:
            self._sealed.append((self._mark, self._fd, self._path))
            self._fd, self._path = -1, None
        return self._mark

    def commit(self, mark: int) -> None:
        """Everything sealed up to `mark` is in the store: delete those segments."""
        keep: list[tuple[int, int, Path]] = []
        for m, fd, path in self._sealed:
            if m <= mark:
                _remove(fd, path)
            else:
                keep.append((m, fd, path))
        self._sealed = keep

    def close(self, *, delete: bool) -> None:
        """Shutdown. `delete=True` when every record reached the store; otherwise the files
        stay (their locks drop with the fds) for the next start's `replay()`."""
        segments = [(fd, path) for _, fd, path in self._sealed]
        if self._fd >= 0 and self._path is not None:
            segments.append((self._fd, self._path))
        for fd, path in segments:
            if delete:
                _remove(fd, path)
            else:
                os.close(fd)
        self._sealed = []
        self._fd, self._path = -1, None

    def segments(self) -> list[Path]:
        """Every journal file in the directory, this process's and others'."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    # -- recovery -----------------------------------------------------------------------------

    async def replay(self, store: _Appender, *, batch: int = 1000) -> int:
        """Sends the records of every segment whose writer is gone to `store` (idempotent by
        request_id) and deletes those segments; returns how many records the store took as
        new. A torn last line (the writer died mid-write) is skipped. A segment whose store
        append fails stays on disk for the next replay."""
        decoder = msgspec.json.Decoder(UsageRecord)
        new = 0
        for path in self.segments():
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # another replayer took it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live process's segment (possibly ours)
            try:
                records, bad = _parse(_read_all(fd), decoder)
                if bad:
                    log.warning("journal replay: skipped %d unreadable line(s) in %s", bad,
                                path.name)
                for i in range(0, len(records), batch):
                    new += await store.append(records[i:i + batch])
            except BaseException:
                os.close(fd)
                raise
            _remove(fd, path)
            log.info("journal replay: %d record(s) from %s", len(records), path.name)
        return new


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(data: bytes, decoder: msgspec.json.Decoder[UsageRecord]) -> tuple[list[UsageRecord], int]:
    records: list[UsageRecord] = []
    bad = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(decoder.decode(line))
        except msgspec.DecodeError:
            bad += 1
    return records, bad


def _remove(fd: int, path: Path) -> None:
    """Unlinks while still holding the lock, so no replayer can open a half-deleted file."""
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    finally:
        os.close(fd)
