"""Incremental decoders for the two streaming framings providers use: SSE and NDJSON.

They take bytes exactly as the network delivers them (events split anywhere, even inside a
UTF-8 sequence or a CRLF) and return complete events, with no per-chunk regex or copying of the
whole buffer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    __slots__ = ("_buf", "_data", "_event", "_id")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        held = b""
        if b"\r" in buf:  # CRLF or CR line endings: normalise once per feed, not per line
            if buf.endswith(b"\r"):  # maybe the first half of a CRLF split across reads
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop() + held if held else lines.pop()
        events: list[SSEEvent] = []
        for line in lines:
            self._line(line, events)
        return events

    def flush(self) -> list[SSEEvent]:
        """Ends the stream: a final event without its blank line still counts."""
        events: list[SSEEvent] = []
        rest = self._buf.rstrip(b"\r")
        self._buf = b""
        if rest:
            events.extend(self.feed(rest + b"\n"))
        self._line(b"", events)
        return events

    def _line(self, raw: bytes, out: list[SSEEvent]) -> None:
        if not raw:
            if self._data:
                out.append(SSEEvent("\n".join(self._data), self._event or "message", self._id))
            self._data = []
            self._event = ""
            return
        if raw[0] == 0x3A:  # ':' comment / keep-alive
            return
        line = raw.decode("utf-8", "replace")
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value


class NDJSONDecoder:
    """Newline-delimited JSON (Ollama): returns each complete non-empty line."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        parts = buf.split(b"\n")
        self._buf = parts.pop()
        return [p for p in (x.strip() for x in parts) if p]

    def flush(self) -> list[bytes]:
        rest = self._buf.strip()
        self._buf = b""
        return [rest] if rest else []
