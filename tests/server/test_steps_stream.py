"""The live steps contract over HTTP (`x-gatewise-steps: 1`), through the real server and a fake
OpenAI upstream speaking the real wire format.

Without the header nothing changes (the official SDK streams as before, no step frame in the
bytes). With it, a stream interleaves `event: gatewise.step` frames with its chunks in order of
occurrence: the route, cache and attempt steps come before the first chunk (as they happen,
before the model answers), `done` with the real usage and cost right before `[DONE]`, an
`error` step before the error frame of a failed stream; retries and fallbacks are attempts of
their own with the reason and what came next. A non-streaming answer carries the same list as
`gatewise_steps`. Step data never holds a PII value or the prompt's text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.faults import HOLD_SECONDS
from tests.fakes.gateway import GatewayServer
from tests.fakes.openai_fake import make_app
from tests.fakes.server import FakeServer
from tests.waiting import wait_until

MASTER = "sk-steps-master"
AUTH = {"authorization": f"Bearer {MASTER}"}
STEPS = {**AUTH, "x-gatewise-steps": "1"}
EMAIL = "maria.lopez@example.org"
CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeServer]:
    with FakeServer(make_app) as srv:  # its own: the notes (held requests) are this module's
        yield srv


@pytest.fixture(scope="module")
def gateway(upstream: FakeServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[GatewayServer]:
    dep = {"api_base": upstream.url + "/v1", "api_key": "sk-upstream",
           "prices": {"input": 1.0, "output": 2.0}}
    config = {
        "models": {
            "gpt": [{"model": "openai/gpt-4o-mini", **dep}],
            "cached": [{"model": "openai/gpt-4o-mini", **dep}],
            "private": [{"model": "openai/gpt-4o-mini", **dep}],
            "flaky": [{"model": "openai/gpt-fail-503", **dep}],
            "broken": [{"model": "openai/gpt-fail-500", **dep}],
            "cut": [{"model": "openai/gpt-cut", **dep}],
            "held": [{"model": "openai/gpt-hold", **dep}],
        },
        "server": {"master_key": MASTER, "warmup": False},
        "router": {"retry": {"max_retries": 1, "base_delay_s": 0.0},
                   "breaker": {"enabled": False}, "fallbacks": {"flaky": ["gpt"]}},
        "cache": {"enabled": True, "aliases": {a: {"enabled": False} for a in
                                               ("gpt", "private", "flaky", "broken", "cut",
                                                "held")}},
        "guardrails": {"aliases": {"private": {"pii": {}}}},
        "storage": {"state_dir": str(tmp_path_factory.mktemp("steps"))},
        "orchestrations": {"both": {"mode": "parallel", "models": ["gpt", "broken"]}},
    }
    with GatewayServer(config) as srv:
        yield srv


def _body(model: str, text: str = "hello steps", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": True,
            "stream_options": {"include_usage": True}, **extra}


def _frames(raw: str) -> list[tuple[str, Any]]:
    """The SSE frames in order: ("step", payload) | ("chunk", payload) | ("error", payload)
    | ("done", None)."""
    out: list[tuple[str, Any]] = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        event = next((ln[7:] for ln in lines if ln.startswith("event: ")), None)
        data = "\n".join(ln[6:] for ln in lines if ln.startswith("data: "))
        if event == "gatewise.step":
            out.append(("step", json.loads(data)))
        elif data == "[DONE]":
            out.append(("done", None))
        else:
            payload = json.loads(data)
            out.append(("error" if "error" in payload else "chunk", payload))
    return out


def _post(gateway: GatewayServer, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers,
                      timeout=30)


def _names(frames: list[tuple[str, Any]]) -> list[str]:
    return [p["step"] for kind, p in frames if kind == "step"]


def test_the_sdk_streams_unchanged_and_no_step_frame_without_the_header(
        gateway: GatewayServer) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER, max_retries=0) as client:
        stream = client.chat.completions.create(model="gpt", stream=True, messages=[
            {"role": "user", "content": "hi there"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello! You said: hi there"
    r = _post(gateway, _body("gpt"), AUTH)
    assert r.status_code == 200
    assert "gatewise.step" not in r.text and "event:" not in r.text
    assert [k for k, _ in _frames(r.text)][-1] == "done"


def test_steps_come_in_order_route_and_attempt_before_the_first_chunk_done_before_DONE(
        gateway: GatewayServer) -> None:
    r = _post(gateway, _body("gpt"), STEPS)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = _frames(r.text)
    kinds = [k for k, _ in frames]
    first_chunk = kinds.index("chunk")
    before = [p["step"] for k, p in frames[:first_chunk] if k == "step"]
    assert before[:2] == ["route", "attempt"]
    assert "first_token" in _names(frames)
    assert kinds[-2:] == ["step", "done"] and frames[-2][1]["step"] == "done"
    attempt = next(p for k, p in frames if k == "step" and p["step"] == "attempt")
    assert attempt["reason"] == "first" and attempt["attempt"] == 1
    assert attempt["provider"] == "openai" and attempt["model"] == "gpt-4o-mini"
    assert attempt["deployment"] == "gpt:openai/gpt-4o-mini"
    # Real figures: the usage chunk the upstream sent, priced from the config.
    usage = next(p["usage"] for k, p in frames if k == "chunk" and p.get("usage"))
    done = frames[-2][1]
    assert done["usage"]["prompt_tokens"] == usage["prompt_tokens"] > 0
    assert done["usage"]["completion_tokens"] == usage["completion_tokens"] == 5
    assert done["cost_usd"] == pytest.approx(
        (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6)
    assert done["finish_reason"] == "stop" and done["deployment"] == attempt["deployment"]
    assert 0 < done["ttft_ms"] <= done["latency_ms"]
    stamps = [p["t_ms"] for k, p in frames if k == "step"]
    assert stamps == sorted(stamps)  # t_ms: milliseconds since the call started, in order


def test_an_orchestrations_branch_steps_come_marked_with_their_branch(
        gateway: GatewayServer) -> None:
    frames = _frames(_post(gateway, _body("both", "fan out"), STEPS).text)
    steps = [p for k, p in frames if k == "step"]
    of: dict[int, list[str]] = {0: [], 1: []}
    for p in steps:
        if "branch" in p:
            of[p["branch"]["index"]].append(p["step"])
    assert [n for n in of[0] if n != "route"] == ["attempt", "first_token", "done"]
    assert [n for n in of[1] if n != "route"] == [
        "attempt", "attempt_failed", "retry", "attempt", "attempt_failed", "error"]
    done = next(p for p in steps if p["step"] == "done" and "branch" in p)
    assert done["branch"] == {"index": 0, "model": "gpt"}
    assert done["cost_usd"] == pytest.approx(
        (done["usage"]["prompt_tokens"] * 1.0 + done["usage"]["completion_tokens"] * 2.0) / 1e6)
    # The call's own steps close the stream: its `done`, unmarked, then [DONE].
    assert [k for k, _ in frames][-2:] == ["step", "done"] and "branch" not in frames[-2][1]
    assert any(k == "chunk" for k, _ in frames)


def test_a_retry_then_a_fallback_are_attempts_with_their_reasons(gateway: GatewayServer) -> None:
    frames = _frames(_post(gateway, _body("flaky"), STEPS).text)
    steps = [p for k, p in frames if k == "step"]
    attempts = [(s["reason"], s["deployment"]) for s in steps if s["step"] == "attempt"]
    assert attempts == [("first", "flaky:openai/gpt-fail-503"),
                        ("retry", "flaky:openai/gpt-fail-503"),
                        ("fallback", "gpt:openai/gpt-4o-mini")]
    failed = [s for s in steps if s["step"] == "attempt_failed"]
    assert [(s["error_type"], s["status"], s["next"]) for s in failed] == [
        ("ProviderOverloadedError", 503, "retry"), ("ProviderOverloadedError", 503, "fallback")]
    assert _names(frames)[-1] == "done"
    assert [k for k, _ in frames][-1] == "done"


def test_an_upstream_failure_is_an_error_step_then_the_error_frame(
        gateway: GatewayServer) -> None:
    r = _post(gateway, _body("broken"), STEPS)
    frames = _frames(r.text)
    assert frames[-1][0] == "error"
    last_step = frames[-2][1]
    assert last_step["step"] == "error"
    assert last_step["type"] == "ProviderServerError" and last_step["status"] == 502
    assert last_step["message"] == frames[-1][1]["error"]["message"]
    assert [s["next"] for k, s in frames if k == "step" and s["step"] == "attempt_failed"] == [
        "retry", "error"]


def test_a_stream_cut_mid_way_ends_with_an_error_step_before_the_error_frame(
        gateway: GatewayServer) -> None:
    frames = _frames(_post(gateway, _body("cut"), STEPS).text)
    kinds = [k for k, _ in frames]
    assert "chunk" in kinds and kinds[-1] == "error"
    assert frames[-2][0] == "step" and frames[-2][1]["step"] == "error"
    assert "done" not in _names(frames)


def test_the_first_step_arrives_before_the_model_answers_and_leaving_closes_the_upstream(
        gateway: GatewayServer, upstream: FakeServer) -> None:
    upstream.notes.clear()
    started = time.monotonic()
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gateway.url}/v1/chat/completions", json=_body("held"),
            headers=STEPS) as r:
        assert r.status_code == 200
        seen = ""
        for text in r.iter_text():
            seen += text
            if '"step":"attempt"' in seen:
                break
        waited = time.monotonic() - started
    assert waited < HOLD_SECONDS / 3  # the upstream holds its answer for HOLD_SECONDS
    assert _names(_frames(seen.rsplit("\n\n", 1)[0] + "\n\n"))[:2] == ["route", "attempt"]
    wait_until(lambda: "hold-abandoned" in upstream.notes, HOLD_SECONDS + 2,
               what="the upstream saw the connection closed")


def test_a_cache_hit_is_a_step_with_cached_tokens_and_no_cost(gateway: GatewayServer) -> None:
    body = _body("cached", "what is cached here", temperature=0)
    # Stored before its answer is sent (a non-streaming miss), so the next one is a hit.
    plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    first = _post(gateway, plain, STEPS).json()["gatewise_steps"]
    assert next(s for s in first if s["step"] == "cache")["result"] == "miss"
    second = _frames(_post(gateway, body, STEPS).text)
    names = _names(second)
    assert "cache" in names and "attempt" not in names and "route" not in names
    assert next(p for k, p in second if k == "step" and p["step"] == "cache")["result"] == "hit"
    done = next(p for k, p in second if k == "step" and p["step"] == "done")
    assert done["usage"]["cached_tokens"] == done["usage"]["prompt_tokens"] > 0
    assert done["cost_usd"] == 0.0 and done["cache"] == "hit"


def test_steps_carry_entity_counts_never_pii_values_or_prompt_text(
        gateway: GatewayServer) -> None:
    secret_text = f"Please e-mail {EMAIL} about card {CARD} today"
    r = _post(gateway, _body("private", secret_text), STEPS)
    frames = _frames(r.text)
    steps = [p for k, p in frames if k == "step"]
    pii = next(s for s in steps if s["step"] == "pii")
    assert pii["entities"] == {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}
    dumped = json.dumps(steps)
    for value in (EMAIL, CARD, "maria", "4111", "Please e-mail"):
        assert value not in dumped
    answer = "".join(p["choices"][0]["delta"].get("content") or ""
                     for k, p in frames if k == "chunk" and p["choices"])
    assert EMAIL in answer  # the caller still gets its own values back (unmasked)


def test_a_non_streaming_answer_lists_its_steps_and_the_sdk_ignores_them(
        gateway: GatewayServer) -> None:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hello steps"}]}
    r = _post(gateway, body, STEPS)
    assert r.status_code == 200
    out = r.json()
    names = [s["step"] for s in out["gatewise_steps"]]
    assert names[:2] == ["route", "attempt"] and names[-1] == "done"
    assert out["gatewise_steps"][-1]["usage"]["completion_tokens"] == \
        out["usage"]["completion_tokens"]
    plain = _post(gateway, body, AUTH).json()
    assert "gatewise_steps" not in plain
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER, max_retries=0,
                       default_headers={"x-gatewise-steps": "1"}) as client:
        done = client.chat.completions.create(model="gpt", messages=[
            {"role": "user", "content": "hi"}])
    assert done.choices[0].message.content == "Hello! You said: hi"


def test_bad_input_with_the_header_is_still_a_4xx(gateway: GatewayServer) -> None:
    r = _post(gateway, {"model": "gpt", "messages": "nope", "stream": True}, STEPS)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
