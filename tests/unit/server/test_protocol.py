"""`GatewayHttpProtocol` rests on uvicorn's httptools protocol: it replaces some of its methods
(copying a few of their lines) and wraps others. Those internals are not uvicorn's public API, so
this test fingerprints every one the protocol depends on, as read for uvicorn 0.55: an upgrade
that touches any of them fails here, loudly, before it can silently undo a connection limit.
The limits' behaviour is tested through a real server in `tests/server/test_connection_limits.py`.
"""

from __future__ import annotations

import hashlib
import inspect

import msgspec
import pytest
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from gatewise.config.schema import ServerConfig
from gatewise.server.protocol import _NAME_BAD, _VALUE_BAD, GatewayHttpProtocol, http_protocol

# sha256 (first 16 hex digits) of `inspect.getsource` of each method, uvicorn 0.55.0.
PROTOCOL = {
    "__init__": "4f08999410347141",  # attributes read: parser, cycle, headers, pipeline, flow...
    "connection_made": "6efb565ff3d36b91",  # wrapped
    "connection_lost": "c91a4c9bf2e29c55",  # wrapped
    "data_received": "010a7ae59a5d3b1a",  # replaced
    "on_header": "1e86ebb6cea0458c",  # copied, plus the field count
    "on_body": "dba9c32aeba35b6a",  # copied, plus the "body came out" note
    # copied (`_begin`): makes the cycle, queues pipelining; forwarded headers per request
    "on_headers_complete": "1ea8589acfad92d8",
    "on_message_complete": "1fbad42dc31fc01f",  # wrapped
    # replaced: the keep-alive watchdog where uvicorn arms a timer per response
    "on_response_complete": "64e254f28e389e76",
    "_unset_keepalive_if_required": "00a6a4e47214e68e",  # replaced (the connection is busy)
    "timeout_keep_alive_handler": "8b53bf5f2e202970",  # called by the watchdog
    "_should_upgrade": "8fcad1ab8e096739",  # called
    "handle_websocket_upgrade": "d5da377bfc77e588",  # called (never, with ws="none")
    "_unsupported_upgrade_warning": "55bbd2762b189d9a",  # replaced by `_ignore_upgrade`
    "shutdown": "d7351fa33f00d430",  # closes the connections we time
}
CYCLE = {
    "__init__": "4d2f220910c33c12",  # copied (called positionally): every attribute it sets
    # copied (no `Event.wait` when the body is in): a disconnected cycle's app gets
    # http.disconnect
    "receive": "8124ae006be71184",
    # replaced by `_Cycle.send` (a known length: head and body in one write); a disconnected
    # cycle writes nothing; keep_alive=False closes after it
    "send": "abdd8601b326a8da",
}


def _fingerprint(cls: type, name: str) -> str:
    return hashlib.sha256(inspect.getsource(getattr(cls, name)).encode()).hexdigest()[:16]


@pytest.mark.parametrize(("cls", "name", "expected"),
                         [(HttpToolsProtocol, n, h) for n, h in PROTOCOL.items()]
                         + [(RequestResponseCycle, n, h) for n, h in CYCLE.items()])
def test_uvicorn_internals_the_protocol_builds_on_are_unchanged(cls: type, name: str,
                                                                 expected: str) -> None:
    assert _fingerprint(cls, name) == expected, (
        f"uvicorn's {cls.__name__}.{name} changed: re-read it against "
        f"gatewise/server/protocol.py (limits, timers, refusals), then update this fingerprint")


def test_every_uvicorn_method_the_protocol_overrides_is_fingerprinted() -> None:
    own = {n for n, v in vars(GatewayHttpProtocol).items() if callable(v) and n in
           vars(HttpToolsProtocol)}
    assert own <= set(PROTOCOL)


def test_each_server_gets_a_protocol_bound_to_its_own_settings() -> None:
    small = ServerConfig(max_header_bytes=2048, max_headers=10, header_timeout_s=0.5)
    bound = http_protocol(small)
    assert issubclass(bound, GatewayHttpProtocol) and bound.settings is small
    assert GatewayHttpProtocol.settings == ServerConfig()  # the default stays untouched


@pytest.mark.parametrize("field", [
    {"max_header_bytes": 100}, {"max_header_bytes": 64 * 1024 * 1024}, {"max_headers": 0},
    {"header_timeout_s": 0}, {"body_timeout_s": -1}, {"body_total_timeout_s": 0},
    {"keep_alive_s": 0}, {"keep_alive_s": 1e9},
])
def test_connection_limits_outside_sane_ranges_are_config_errors(field: dict[str, float]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(field, ServerConfig)


def test_default_limits_bound_headers_and_slow_clients() -> None:
    s = ServerConfig()
    assert (s.max_header_bytes, s.max_headers) == (16 * 1024, 100)
    assert (s.header_timeout_s, s.body_timeout_s, s.body_total_timeout_s) == (10, 30, 300)
    assert s.keep_alive_s <= 75


def test_header_byte_tables_refuse_what_uvicorns_patterns_refuse() -> None:
    """`_Cycle._start` checks a response's header bytes with `translate` tables built from
    uvicorn's patterns, which holds only while each pattern is one character class."""
    for pattern, table in ((HEADER_RE, _NAME_BAD), (HEADER_VALUE_RE, _VALUE_BAD)):
        assert pattern.pattern.startswith(b"[") and pattern.pattern.endswith(b"]")
        for b in range(256):
            text = b"ok" + bytes([b]) + b"ok"
            assert (pattern.search(text) is not None) == (b in table)
