"""Log formatting for `gatewise serve`: every field a line carries reaches the operator.

The gateway logs structured lines: a request line (`gatewise.request`), incidents
(`gatewise.incident`), security events (`gatewise.security`), each with its fields passed as
`extra`. Python's stock formatters print only the message, so those fields were lost. Two
formatters keep them:

- `JsonFormatter`: one JSON object per line, `ts`, `level`, `logger`, `msg`, then every
  `extra` field as it was given (an exception as one `exc` string: the traceback's text,
  never its frames' locals, which could hold a prompt or a key). Encoded with msgspec, so a
  line costs a few microseconds;
- `TextFormatter`: the usual `time level logger message`, then the same fields as
  `key=value` (values with spaces or quotes JSON-quoted, absent ones left out).

`configure_logging(level, fmt)` installs one of them on the root logger; uvicorn's own loggers
propagate to it (`server/serving.py` hands uvicorn no logging config of its own), so every line
of the process has one shape. What goes into the fields is the emitter's business: ids,
names and numbers, never prompt text or secrets.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from typing import IO, Any, Literal, cast

import msgspec

LogFormat = Literal["text", "json"]

# Attributes every LogRecord has: anything else on a record came in through `extra`
# (except uvicorn's `color_message`, its message again with terminal colour codes).
# A record may also carry its `extra` fields as one dict under `FIELDS` (the request line
# does): the formatters then read that dict instead of sifting every attribute of the record.
FIELDS = "gatewise_fields"
# A record with this attribute set waits for its batch whatever its level (`BatchingStreamHandler`):
# warnings that are high-volume by design, such as a security event per masked request.
BATCHED = "gatewise_batched"
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName", "color_message", FIELDS, BATCHED}

_HEAD_KEYS = frozenset({"ts", "level", "logger", "msg"})
# A text-format value printed as it is: printable ASCII without space, `"`, `=` or `\`.
# Anything else is JSON-quoted, so a caller-chosen value (a model name) can neither forge a
# field nor send terminal escapes.
_BARE = re.compile(r"[!#-<>-\[\]-~]+").fullmatch

# What a record waiting to be formatted counts towards `max_bytes` (a request line's size).
_DEFERRED_BYTES = 320
# String values `TextFormatter` keeps as printed: at most 1,024 of at most 256 characters each
# (each with its printed form: about 0.25 MB once request ids have filled it, ~1 MB at worst).
_SHOWN_MAX = 1024
_SHOWN_CHARS = 256

_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
           logging.ERROR: "error", logging.CRITICAL: "critical"}


def _fallback(obj: Any) -> Any:
    """What msgspec cannot encode natively (an exception, a path, a set) becomes its text:
    a log line is never lost to an odd field."""
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    return str(obj)


class _Timestamps:
    """ISO 8601 UTC with milliseconds; the part up to the second is formatted once a second,
    not once a line (strftime is most of a line's cost otherwise)."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int(msecs):03d}Z"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call site passed as `extra` (in the order given)."""
    given = record.__dict__.get(FIELDS)
    if given is not None:
        return dict(given)
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts`, `level`, `logger`, `msg`, then the `extra` fields.

    A field named like one of the four keeps its value under `extra_<name>` rather than
    overwriting it."""

    def __init__(self) -> None:
        super().__init__()
        self._encode = msgspec.json.Encoder(enc_hook=_fallback).encode
        self._ts = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        head: dict[str, Any] = {
            "ts": self._ts(record.created, record.msecs),
            "level": _LEVELS.get(record.levelno) or record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = extra_fields(record)
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exc"] = record.exc_text
        if record.stack_info:
            fields["stack"] = record.stack_info
        if "ts" in fields or "level" in fields or "logger" in fields or "msg" in fields:
            for k in _HEAD_KEYS.intersection(fields):
                fields[f"extra_{k}"] = fields.pop(k)
        head.update(fields)
        try:
            return self._encode(head).decode()
        except (TypeError, ValueError, OverflowError):
            # A field msgspec refuses even through the fallback (a dict with non-string
            # keys, say): the line still goes out, that field as text.
            return self._encode({k: v if isinstance(v, str | int | float | bool | None)
                                 else str(v) for k, v in head.items()}).decode()


class TextFormatter(logging.Formatter):
    """`2026-12-04T16:48:24.123Z INFO gatewise.request request status=200 latency_ms=3.1`"""

    def __init__(self) -> None:
        super().__init__()
        self._encode = msgspec.json.Encoder(enc_hook=_fallback).encode
        self._ts = _Timestamps()
        # A short string value as printed (bare or JSON-quoted), for the values lines repeat
        # (model, deployment, key, team, endpoint): a dict hit, where the check was a regex
        # call a value (a text request line: 5.8 -> 4.7 µs to format). Bounded: emptied when
        # full (a request id never repeats and ends up here too).
        self._shown: dict[str, str] = {}

    def _value(self, v: Any) -> str:
        if isinstance(v, str):
            return v if _BARE(v) else self._encode(v).decode()
        if isinstance(v, float):  # a float's subclass (numpy's): as `format` prints a float
            f = float(v)
            return self._encode(f).decode() if f - f == 0.0 else repr(f)
        if isinstance(v, int):
            return str(v)
        try:
            return self._encode(v).decode()
        except (TypeError, ValueError, OverflowError):
            return self._encode(str(v)).decode()

    def format(self, record: logging.LogRecord) -> str:
        parts = [self._ts(record.created, record.msecs), record.levelname, record.name,
                 record.getMessage()]
        bare, encode, shown = _BARE, self._encode, self._shown
        given = record.__dict__.get(FIELDS)
        for k, v in (given if given is not None else record.__dict__).items():
            if v is None or (given is None and k in _STANDARD):
                continue
            cls = v.__class__  # the common cases inline: this loop is most of a line's cost
            if cls is str:
                text = shown.get(v)
                if text is None:
                    text = v if bare(v) else encode(v).decode()
                    if len(v) <= _SHOWN_CHARS:
                        if len(shown) >= _SHOWN_MAX:
                            shown.clear()
                        shown[v] = text
                parts.append(f"{k}={text}")
            elif cls is float:
                # msgspec's shortest digits, as the JSON format prints them (`1e-05` reads
                # `0.00001`): 0.23 µs where `repr` took 0.53 (in process), and `repr`'s
                # `dtoa` was the largest part of a line's cost left (a request line has three
                # floats); `repr` for NaN and infinity, which JSON has no number for.
                parts.append(f"{k}={encode(v).decode()}" if v - v == 0.0 else f"{k}={v}")
            elif cls is int or cls is bool:
                parts.append(f"{k}={v}")
            else:
                parts.append(f"{k}={self._value(v)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines to the stream in batches instead of one write (and flush) per line.

    A request line per request made the write system call the largest part of its cost:
    ~25 µs of the ~38 µs a served request gained with the line on (`make bench`). Lines wait
    at most `flush_interval_s` (a daemon thread flushes), a WARNING or worse is written at
    once with everything before it (unless the record is marked `BATCHED`: a security event
    per guarded request would otherwise cost a write each), and so is a batch past
    `max_bytes`; `close` (and `logging.shutdown` at exit) writes what is left.

    A record that carries its fields as one dict (`FIELDS`: the request line, security events)
    and no exception is formatted later, with up to `format_batch` others in one stretch
    (still on the emitting thread; the flusher formats what a timed flush finds), rather than
    one at a time between two requests' work, where it ran with cold caches: formatting cost
    ~10 µs of the bare proxy path's ~230 µs CPU a request, about half of that saved in batches
    (issue 15, `bench/paths_bench.py`). Its dict and attributes are
    its emitter's and are not changed after `emit`; any other record (whose `args` may be
    mutable objects) is formatted at once, as before."""

    def __init__(self, stream: IO[str], *, flush_interval_s: float = 0.2,
                 max_bytes: int = 64 * 1024, format_batch: int = 64) -> None:
        super().__init__(stream)
        # Lines, or records still to format (in order); `_deferred` counts the records.
        self._pending: list[str | logging.LogRecord] = []
        self._deferred = 0
        self._batch = format_batch
        self._size = 0
        self._max = max_bytes
        self._interval = flush_interval_s
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._run, daemon=True,
                                         name="gatewise-log-flush")
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:  # called under self.lock
        d = record.__dict__
        if d.get(FIELDS) is not None and not record.exc_info and self._batch > 1:
            self._pending.append(record)
            self._deferred += 1
            self._size += _DEFERRED_BYTES
            if self._deferred >= self._batch:
                self._format_pending()
        else:
            try:
                line = self.format(record)
            except Exception:
                self.handleError(record)
                return
            self._pending.append(line)
            self._size += len(line)
        if (record.levelno >= logging.WARNING and not d.get(BATCHED)) \
                or self._size >= self._max:
            self._write()

    def _format_pending(self) -> None:
        """Formats every deferred record in place; one that fails is reported and dropped,
        as a failed `format` in `emit` would be."""
        if not self._deferred:
            return
        fmt = self.format
        out: list[str | logging.LogRecord] = []
        for item in self._pending:
            if isinstance(item, str):
                out.append(item)
                continue
            try:
                out.append(fmt(item))
            except Exception:
                self.handleError(item)
        self._pending = out
        self._deferred = 0

    def _write(self) -> None:
        if not self._pending:
            return
        self._format_pending()
        data = "\n".join(cast("list[str]", self._pending)) + "\n"
        self._pending.clear()
        self._size = 0
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nowhere left to say so
            pass

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()


def make_formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure_logging(level: str, fmt: LogFormat, *,
                      stream: IO[str] | None = None) -> logging.Handler:
    """One handler on the root logger, writing `fmt` lines to `stream` (stderr by default,
    in batches: `BatchingStreamHandler`), replacing whatever handlers the root had. Returns
    the handler.

    `level` applies to gatewise's loggers (`gatewise.*`) and uvicorn's (set by uvicorn from
    the same level); other libraries log at WARNING and above, whatever `level` says: at INFO
    some log a line per request of their own (Presidio does), which would drown the
    gateway's one. uvicorn's loggers are left without handlers of their own and propagate
    here; its access log stays off (`server/serving.py`): the request line is the one."""
    handler: logging.Handler = (logging.StreamHandler(stream) if stream is not None
                                else BatchingStreamHandler(sys.stderr))
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, BatchingStreamHandler):
            old.close()
    root.addHandler(handler)
    wanted = logging.getLevelName(level.upper())
    if not isinstance(wanted, int):
        raise ValueError(f"unknown log level {level!r}")
    root.setLevel(max(wanted, logging.WARNING))
    logging.getLogger("gatewise").setLevel(wanted)
    # Neither format prints threads or processes: records need not look them up.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
    return handler
