"""Stream framing survives the network splitting bytes anywhere."""

from __future__ import annotations

from gatewise.transport.sse import NDJSONDecoder, SSEDecoder

STREAM = (b'event: message_start\r\ndata: {"a": 1}\r\n\r\n: keep-alive\n\n'
          b'data: line one\ndata: line two\n\nid: 7\ndata: "caf\xc3\xa9"\n\ndata: [DONE]\n\n')


def _decode(parts: list[bytes]) -> list[tuple[str, str, str | None]]:
    d = SSEDecoder()
    out = [e for p in parts for e in d.feed(p)] + d.flush()
    return [(e.event, e.data, e.id) for e in out]


EXPECTED = [("message_start", '{"a": 1}', None), ("message", "line one\nline two", None),
            ("message", '"café"', "7"), ("message", "[DONE]", "7")]


def test_whole_stream_decodes_into_events() -> None:
    assert _decode([STREAM]) == EXPECTED


def test_every_split_point_gives_the_same_events() -> None:
    for i in range(1, len(STREAM)):
        assert _decode([STREAM[:i], STREAM[i:]]) == EXPECTED, i


def test_byte_by_byte_gives_the_same_events() -> None:
    assert _decode([STREAM[i:i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_a_final_event_without_blank_line_is_kept_on_flush() -> None:
    assert _decode([b"data: tail"]) == [("message", "tail", None)]


def test_ndjson_lines_split_anywhere() -> None:
    data = b'{"a":1}\n{"b":2}\n\n{"c":3}'
    for i in range(1, len(data)):
        d = NDJSONDecoder()
        lines = d.feed(data[:i]) + d.feed(data[i:]) + d.flush()
        assert lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
