"""Structured logs: one request line per call with the call's ids, names and numbers, printed as
JSON or `key=value`; incidents and security events keep their fields; never prompt text, never
a key."""

from __future__ import annotations

import io
import json
import logging
import math
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import GatewayError, ToolCallRejected
from gatewise.observability import telemetry
from gatewise.observability.incidents import IncidentRecorder
from gatewise.observability.logs import (
    BatchingStreamHandler,
    JsonFormatter,
    TextFormatter,
    configure_logging,
)
from gatewise.pipeline.core import Call, Handler, Identity
from gatewise.security.events import log_event
from gatewise.types.validation import decode_chat_request
from tests.waiting import wait_until

CANARY = "CANARY-prompt-7f3a9c"  # prompt text that must never reach a log line
KEY = "sk-upstream-canary-0123456789abcdef"  # a provider key that must never reach one either
WHO = Identity(team="red", key_id="key_42", user="user_7")
# A tool this gateway does not know: the tool guard drops it (a `flag`) or refuses the call.
TOOLS = [{"type": "function", "function": {"name": "unregistered", "parameters": {
    "type": "object"}}}]


def _gateway(*, requests: bool = True) -> Gateway:
    cfg, w = parse_config({
        "models": {"m": [{"model": "fake/echo", "api_key": KEY,
                          "prices": {"input": 1.0, "output": 2.0}}],
                   "broken": [{"model": "fake/fail-500", "api_key": KEY}]},
        "storage": {"database": "memory"},
        "router": {"retry": {"max_retries": 0}},
        "cache": {"enabled": True},
        "guardrails": {"default": {"tools": {"unknown_request_tools": "drop"}}},
        "observability": {"logging": {"requests": requests}},
    })
    return Gateway(resolve_config(cfg, None, {}, w))


class Captured:
    """Everything `gatewise.*` logs, as the lines a JSON (or text) handler writes."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.out = io.StringIO()
        self.handler = logging.StreamHandler(self.out)
        self.handler.setFormatter(formatter)

    @property
    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    def requests(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["logger"] == "gatewise.request"]


def _capture(formatter: logging.Formatter, level: int) -> Iterator[Captured]:
    cap = Captured(formatter)
    logger = logging.getLogger("gatewise")
    old = logger.level
    logger.addHandler(cap.handler)
    logger.setLevel(level)
    try:
        yield cap
    finally:
        logger.removeHandler(cap.handler)
        logger.setLevel(old)


@pytest.fixture
def logs() -> Iterator[Captured]:
    yield from _capture(JsonFormatter(), logging.INFO)


@pytest.fixture
def text_logs() -> Iterator[Captured]:
    yield from _capture(TextFormatter(), logging.INFO)


def _clean(cap: Captured) -> None:
    for line in cap.lines:
        assert CANARY not in line and KEY not in line, line


async def test_a_successful_request_is_one_json_line_with_every_field(logs: Captured) -> None:
    async with _gateway() as gw:
        r = await gw.chat(f"{CANARY} hello", model="m", identity=WHO, temperature=0,
                          tools=TOOLS)
    [line] = logs.requests()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
    assert (line["level"], line["msg"]) == ("info", "request")
    assert line["request_id"] == r.info.request_id
    assert (line["key_id"], line["team"]) == ("key_42", "red")
    assert "user" not in line  # an end user's id is often an e-mail address
    assert (line["alias"], line["model"], line["deployment"]) == ("m", "fake/echo",
                                                                  "m:fake/echo")
    assert line["status"] == 200 and "error_type" not in line
    assert line["latency_ms"] > 0 and 0 < line["ttft_ms"] <= line["latency_ms"]
    assert r.usage is not None
    assert (line["prompt_tokens"], line["completion_tokens"]) == (r.usage.prompt_tokens,
                                                                  r.usage.completion_tokens)
    assert line["cost_usd"] == pytest.approx(r.info.cost_usd) and line["cost_usd"] > 0
    assert line["cache"] == "miss"
    assert line["guards"] == ["tool_call:flag"]
    assert "trace_id" not in line  # tracing off: no span on the call
    _clean(logs)


async def test_a_cache_hit_says_so_and_costs_nothing(logs: Captured) -> None:
    async with _gateway() as gw:
        await gw.chat(f"{CANARY} twice", model="m", identity=WHO, temperature=0)
        await gw.chat(f"{CANARY} twice", model="m", identity=WHO, temperature=0)
        metrics = gw.metrics.render()
    first, second = logs.requests()
    assert (first["cache"], second["cache"]) == ("miss", "hit")
    assert second["cost_usd"] == 0 and second["status"] == 200
    assert "deployment" not in second  # no deployment served it
    # ... and the metrics count the hit under its alias, not as an unknown model
    assert 'gatewise_requests_total{endpoint="chat",model="m",deployment="none",' \
           'status="200"} 1' in metrics
    _clean(logs)


async def test_a_failure_is_logged_with_its_error_type_even_with_request_lines_off(
        logs: Captured) -> None:
    async with _gateway(requests=False) as gw:
        await gw.chat(f"{CANARY} fine", model="m", identity=WHO)
        with pytest.raises(GatewayError) as info:
            await gw.chat(f"{CANARY} broken", model="broken", identity=WHO)
    [line] = logs.requests()  # the success went to DEBUG
    assert line["status"] == info.value.status >= 500
    assert line["level"] == "info"
    assert line["error_type"] == type(info.value).__name__
    assert line["alias"] == "broken" and line["team"] == "red"
    _clean(logs)


async def test_a_refusal_is_logged_at_info_with_the_guard_that_refused(logs: Captured) -> None:
    cfg, w = parse_config({"models": {"m": [{"model": "fake/echo"}]},
                           "storage": {"database": "memory"},
                           "guardrails": {"default": {"tools": {}}}})
    async with Gateway(resolve_config(cfg, None, {}, w)) as gw:
        with pytest.raises(ToolCallRejected):
            await gw.chat(f"{CANARY} hello", model="m", identity=WHO, tools=TOOLS)
    [line] = logs.requests()
    assert (line["level"], line["status"]) == ("info", 400)
    assert line["guards"] == ["tool_call:block"]
    [event] = [r for r in logs.records() if r["logger"] == "gatewise.security"]
    assert (event["kind"], event["action"], event["key_id"]) == ("tool_call", "block",
                                                                 "key_42")
    assert event["request_id"] == line["request_id"]
    assert event["detail"] == {"tools": ["unregistered"], "problems": ["unknown_request_tool"],
                               "count": 1}
    _clean(logs)


async def test_a_stream_is_logged_once_when_it_ends(logs: Captured) -> None:
    async with _gateway() as gw:
        s = gw.stream(f"{CANARY} one two three", model="m", identity=WHO)
        assert logs.requests() == []  # nothing yet: the stream is still open
        text = "".join([c.choices[0].delta.content or "" async for c in s if c.choices])
    assert CANARY in text
    [line] = logs.requests()
    assert line["stream"] is True and line["status"] == 200
    assert line["completion_tokens"] == len(text.split())
    assert 0 < line["ttft_ms"] <= line["latency_ms"]
    assert line["cost_usd"] > 0
    _clean(logs)


async def test_an_unknown_model_is_logged_with_what_was_asked(logs: Captured) -> None:
    async with _gateway() as gw:
        with pytest.raises(GatewayError):
            await gw.chat("x", model="no-such-model", identity=WHO)
    [line] = logs.requests()
    assert (line["alias"], line["status"]) == ("no-such-model", 404)
    assert "model" not in line and line["error_type"] == "ModelNotFoundRequestError"


async def test_the_text_format_shows_the_same_fields_as_key_value(text_logs: Captured) -> None:
    async with _gateway() as gw:
        await gw.chat(f"{CANARY} hello", model="m", identity=WHO, temperature=0, tools=TOOLS)
    [line] = [x for x in text_logs.lines if " gatewise.request request " in x]
    assert " INFO gatewise.request request request_id=req_" in line
    for field in ("alias=m", "model=fake/echo", "deployment=m:fake/echo", "status=200",
                  "key_id=key_42", "team=red", "cache=miss",
                  'guards=["tool_call:flag"]', "prompt_tokens=", "cost_usd="):
        assert field in line, field
    _clean(text_logs)


async def test_the_fields_are_gathered_only_when_the_line_would_be_written(
        logs: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    gathered: list[str] = []
    real = telemetry.request_fields

    def spy(call: Call, *a: Any) -> dict[str, Any]:
        gathered.append(call.request_id)
        return real(call, *a)

    monkeypatch.setattr(telemetry, "request_fields", spy)
    logging.getLogger("gatewise").setLevel(logging.WARNING)
    async with _gateway() as gw:
        await gw.chat("quiet", model="m")
        assert gathered == []
        logging.getLogger("gatewise").setLevel(logging.INFO)
        await gw.chat("loud", model="m")
    assert len(gathered) == 1


def test_incident_lines_keep_their_fields(logs: Captured) -> None:
    IncidentRecorder().record("breaker_open", alias="m", deployment="m:fake/echo",
                              error_type="ProviderTimeoutError", failures=5)
    [line] = logs.records()
    assert (line["logger"], line["level"], line["msg"]) == ("gatewise.incident", "warning",
                                                            "breaker_open")
    assert (line["incident"], line["alias"], line["deployment"], line["error_type"],
            line["failures"]) == ("breaker_open", "m", "m:fake/echo", "ProviderTimeoutError", 5)


def test_security_event_lines_keep_their_fields(logs: Captured) -> None:
    log_event("pii", "mask", request_id="req_1", tenant="t", key_id="key_1",
              detail={"entities": {"EMAIL_ADDRESS": 2}})
    [line] = logs.records()
    assert (line["kind"], line["action"], line["request_id"], line["key_id"]) == (
        "pii", "mask", "req_1", "key_1")
    assert line["detail"] == {"entities": {"EMAIL_ADDRESS": 2}}


def test_json_lines_survive_odd_fields_exceptions_and_name_clashes() -> None:
    fmt = JsonFormatter()
    log = logging.getLogger("gatewise.test")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = log.makeRecord("gatewise.test", logging.ERROR, __file__, 1, "failed %s", ("x",),
                             sys.exc_info(), extra={"level": "clash", "when": {1, 2},
                                                    "err": KeyError("k"), "n": float("nan")})
    line = json.loads(fmt.format(rec))
    assert line["msg"] == "failed x" and line["level"] == "error"
    assert line["extra_level"] == "clash"
    assert line["when"] == [1, 2] and line["err"] == "'k'" and line["n"] is None
    assert line["exc"].startswith("Traceback") and "ValueError: boom" in line["exc"]
    assert "\n" not in fmt.format(rec)  # one line, the traceback escaped inside it


def test_text_values_with_spaces_or_quotes_are_json_quoted() -> None:
    rec = logging.getLogger("gatewise.test").makeRecord(
        "gatewise.test", logging.INFO, __file__, 1, "hello", (), None,
        extra={"plain": "abc", "spaced": "a b", "quoted": 'say "hi"', "none": None,
               "n": 3, "items": ["a", "b"]})
    line = TextFormatter().format(rec)
    assert line.endswith(' INFO gatewise.test hello plain=abc spaced="a b" '
                         'quoted="say \\"hi\\"" n=3 items=["a","b"]')


def test_text_numbers_print_as_their_shortest_digits_and_non_finite_ones_by_name() -> None:
    rec = logging.getLogger("gatewise.test").makeRecord(
        "gatewise.test", logging.INFO, __file__, 1, "hello", (), None,
        extra={"latency_ms": 3.142, "cost_usd": 1e-05, "big": 1.5e300, "whole": 2.0,
               "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "n": 7,
               "yes": True})
    line = TextFormatter().format(rec)
    assert line.endswith(" hello latency_ms=3.142 cost_usd=0.00001 big=1.5e300 whole=2.0 "
                         "nan=nan inf=inf ninf=-inf n=7 yes=True")


def test_a_float_subclass_prints_as_a_float_does() -> None:
    """numpy's float64 (an application's metric, a score) reads as a plain float would."""

    class Score(float):
        def __str__(self) -> str:
            return "Score(...)"

    rec = logging.getLogger("gatewise.test").makeRecord(
        "gatewise.test", logging.INFO, __file__, 1, "hello", (), None,
        extra={"score": Score(1e-05), "odd": Score("nan"), "count": 3})
    assert TextFormatter().format(rec).endswith(" hello score=0.00001 odd=nan count=3")


def test_the_request_line_rounds_its_numbers_to_what_they_mean() -> None:
    call = Call("chat", decode_chat_request(b'{"model":"m","messages":[{"role":"user",'
                                            b'"content":"hi"}]}'), Identity())
    call.ttft, call.cost_usd = 0.0012344999, 0.000123456789
    fields = telemetry.request_fields(call, 200, 0.0314159, None)
    assert (fields["latency_ms"], fields["ttft_ms"], fields["cost_usd"]) == (
        31.416, 1.234, 0.00012346)
    call.cost_usd = float("nan")  # a price from config can make anything: it never raises
    assert math.isnan(telemetry.request_fields(call, 200, 0.0, None)["cost_usd"])


def test_text_values_print_the_same_when_they_repeat_and_after_many_distinct_ones() -> None:
    fmt = TextFormatter()  # keeps printed values; must never print a stale or wrong one

    def fields(extra: dict[str, object]) -> str:
        rec = logging.getLogger("gatewise.test").makeRecord(
            "gatewise.test", logging.INFO, __file__, 1, "hello", (), None, extra=extra)
        return fmt.format(rec).split(" hello ", 1)[1]

    repeated = {"model": "gpt-x", "who": "a b", "said": 'q"', "long": "w z" * 200}
    first = fields(repeated)
    assert first == ('model=gpt-x who="a b" said="q\\"" long="' + "w z" * 200 + '"')
    assert fields(repeated) == first
    for i in range(3000):  # more distinct values than are kept: the store empties and refills
        assert fields({"request_id": f"req {i}"}) == f'request_id="req {i}"'
    assert fields(repeated) == first
    assert fields({"model": "a b", "who": "gpt-x"}) == 'model="a b" who=gpt-x'


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("gatewise").level)
    flags = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    yield
    logging.logThreads, logging.logProcesses, logging.logMultiprocessing = flags
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])
    logging.getLogger("gatewise").setLevel(saved[2])


def test_configure_logging_installs_one_format_for_gatewise_and_uvicorn(
        root_logging: None) -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    logging.getLogger("gatewise.request").info("request", extra={"status": 200})
    logging.getLogger("uvicorn.error").warning("Uvicorn running")
    logging.getLogger("some.library").info("chatter per request")  # others: WARNING and up
    logging.getLogger("some.library").warning("a real problem")
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["logger"], x["msg"]) for x in lines] == [
        ("gatewise.request", "request"), ("uvicorn.error", "Uvicorn running"),
        ("some.library", "a real problem")]
    assert lines[0]["status"] == 200
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("loud", "text", stream=out)


def test_the_request_line_record_is_the_record_logging_would_make() -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    line = telemetry.RequestLine()
    keep = Keep()
    line.log.addHandler(keep)
    old = line.log.level
    line.log.setLevel(logging.INFO)
    try:
        line.emit(logging.WARNING, {"status": 502})
        line.emit(logging.INFO, {"status": 200})
    finally:
        line.log.removeHandler(keep)
        line.log.setLevel(old)
    made = logging.LogRecord("gatewise.request", logging.INFO, telemetry.__file__, 0, "request",
                             None, None)
    # message: pytest's; gatewise_fields: the fields again, as one dict for our formatters
    varying = {"created", "msecs", "relativeCreated", "status", "message", "gatewise_fields"}
    assert {k: v for k, v in vars(seen[1]).items() if k not in varying} == \
        {k: v for k, v in vars(made).items() if k not in varying}
    assert (seen[0].levelname, seen[0].status, seen[1].status) == (  # type: ignore[attr-defined]
        "WARNING", 502, 200)
    assert abs(seen[1].created - made.created) < 5
    assert 0 <= seen[1].msecs < 1000
    assert abs(seen[1].relativeCreated - made.relativeCreated) < 5000


def test_text_values_never_carry_terminal_escapes_or_forged_fields() -> None:
    rec = logging.getLogger("gatewise.test").makeRecord(
        "gatewise.test", logging.INFO, __file__, 1, "request", (), None,
        extra={"alias": "\x1b[31mred status=200", "team": "ünï"})
    line = TextFormatter().format(rec)
    assert "\x1b" not in line and line.count("status=") == 1
    assert line.endswith(' alias="\\u001b[31mred status=200" team="ünï"')


async def test_the_trace_id_of_a_traced_call_is_on_its_line(logs: Captured) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"

    class Traced:  # what tracing leaves on the call: an object with a 32-hex `trace_id`
        async def __call__(self, call: Call, next: Handler) -> Any:
            call.span = SimpleNamespace(trace_id=trace_id)
            return await next(call)

    cfg, w = parse_config({"models": {"m": [{"model": "fake/echo"}]},
                           "storage": {"database": "memory"}})
    async with Gateway(resolve_config(cfg, None, {}, w), middlewares=[Traced()]) as gw:
        await gw.chat("x", model="m")
    [line] = logs.requests()
    assert line["trace_id"] == trace_id


def test_the_server_s_stderr_handler_writes_in_batches_but_never_holds_a_warning() -> None:
    """`configure_logging` without a stream (what `gatewise serve` does) batches writes; a
    line waits at most the flush interval, a warning goes out at once with what preceded it,
    and closing writes the rest."""

    class Writes(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def write(self, s: str) -> int:
            self.calls += 1
            return super().write(s)

    out = Writes()
    handler = BatchingStreamHandler(out, flush_interval_s=0.05)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gatewise.test.batching")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for i in range(50):
            logger.info("request", extra={"n": i})
        assert out.calls == 0  # nothing written per line
        wait_until(lambda: out.getvalue().count("\n") == 50, 2, what="a timed flush")
        assert out.calls == 1
        logger.info("quiet")
        logger.warning("loud")
        assert [json.loads(x)["msg"] for x in out.getvalue().splitlines()[-2:]] == [
            "quiet", "loud"]
        logger.info("last")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert out.getvalue().splitlines()[-1].endswith('"msg":"last"}')


def test_request_lines_are_formatted_in_batches_yet_come_out_whole_and_in_order() -> None:
    """A request line (fields as one dict) is formatted with the others of its batch, not when
    it is emitted; lines of other shapes keep their place among them, and the fields a line
    carried are the ones printed."""

    class Counting(TextFormatter):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def format(self, record: logging.LogRecord) -> str:
            self.calls += 1
            return super().format(record)

    out = io.StringIO()
    handler = BatchingStreamHandler(out, flush_interval_s=3600, format_batch=4)
    formatter = Counting()
    handler.setFormatter(formatter)
    logger = logging.getLogger("gatewise.test.deferred")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    lines = telemetry.RequestLine(logger)
    try:
        lines.emit(logging.INFO, {"request_id": "req_1", "status": 200})
        lines.emit(logging.INFO, {"request_id": "req_2", "status": 200})
        assert formatter.calls == 0  # waiting for its batch
        logger.info("plain %s", "text")  # formatted at once: its args are the caller's
        assert formatter.calls == 1
        lines.emit(logging.INFO, {"request_id": "req_3", "status": 502})
        lines.emit(logging.INFO, {"request_id": "req_4", "status": 200})
        assert formatter.calls == 5 and out.getvalue() == ""  # a batch formatted, not written
        lines.emit(logging.INFO, {"request_id": "req_5", "status": 200})
        handler.flush()
        got = out.getvalue().splitlines()
        assert [re.search(r"request_id=(\S+)|plain text", x).group(0)  # type: ignore[union-attr]
                for x in got] == ["request_id=req_1", "request_id=req_2", "plain text",
                                  "request_id=req_3", "request_id=req_4", "request_id=req_5"]
        assert "status=502" in got[3]
        lines.emit(logging.WARNING, {"request_id": "req_6", "status": 500})
        assert out.getvalue().splitlines()[-1].endswith("request_id=req_6 status=500")
    finally:
        logger.removeHandler(handler)
        handler.close()
