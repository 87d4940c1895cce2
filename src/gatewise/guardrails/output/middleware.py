"""`OutputCheckMiddleware`: runs the output checks on every answer and acts per check.

- `flag`: the answer goes out; the call gets an event, the response an
  `x-gatewise-output-flags` header, and a security event is emitted.
- `block`: `OutputCheckFailed` (400, code `output_check_failed`) naming the check and why.
- `retry`: one more round with the answer and a note saying what was wrong; if the new answer
  still fails a check that is not `flag`, it is blocked.

Streams cannot be retried (the text is already with the client); their checks run on the
whole text when the stream finishes, and `block`/`retry` then fail the stream's end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from gatewise.errors import OutputCheckFailed
from gatewise.guardrails.output.checks import Action, Finding, OutputCheck
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import ChunkStream
from gatewise.security.events import SecurityEventSink
from gatewise.types.messages import AssistantMessage, UserMessage
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk

FLAGS_HEADER = "x-gatewise-output-flags"
RETRY_NOTE = ("Your previous answer failed an automatic check: {reasons}. "
              "Write the answer again and fix that.")


class OutputCheckMiddleware:
    def __init__(self, checks: Sequence[OutputCheck | tuple[OutputCheck, Action]], *,
                 actions: Mapping[str, Action] | None = None,
                 events: SecurityEventSink | None = None) -> None:
        """`checks`: check objects (action `flag`) or (check, action) pairs; `actions` by
        check name overrides either. A check whose action is `off` is dropped."""
        self.checks: list[tuple[OutputCheck, Action]] = []
        for item in checks:
            check, action = item if isinstance(item, tuple) else (item, "flag")
            action = (actions or {}).get(check.name, action)
            if action != "off":
                self.checks.append((check, action))
        self.events = events

    def run_checks(self, text: str, request: ChatRequest) -> list[tuple[Finding, Action]]:
        out: list[tuple[Finding, Action]] = []
        for check, action in self.checks:
            f = check.check(text, request)
            if f is not None:
                out.append((f, action))
        return out

    async def __call__(self, call: Call, next: Handler) -> Any:
        if call.kind != "chat" or not self.checks:
            return await next(call)
        req = call.chat_request
        result = await next(call)
        if isinstance(result, ChunkStream):
            result.collect_text()
            result.add_transform(_StreamCheck(self, call, result))
            return result
        if not isinstance(result, ChatCompletion):
            return result
        findings = self._findings(result, req)
        if not findings:
            return result
        self._flag(call, findings)
        failing = [f for f, a in findings if a in ("block", "retry")]
        if not failing:
            return result
        if not any(a == "retry" for _, a in findings):
            raise self._block(call, failing)
        self._emit(call, [f for f, a in findings if a == "retry"], "retry")
        call.event("output_check_retry", checks=[f.check for f in failing])
        call.request = _retry_request(req, result, failing)
        try:
            second = await next(call)
        finally:
            call.request = req
        assert isinstance(second, ChatCompletion)
        again = self._findings(second, req)
        self._flag(call, again)
        still = [f for f, a in again if a in ("block", "retry")]
        if still:
            raise self._block(call, still, retried=True)
        return second

    def _findings(self, result: ChatCompletion, req: ChatRequest) -> list[tuple[Finding, Action]]:
        out: list[tuple[Finding, Action]] = []
        for choice in result.choices:
            if choice.message.content:
                out.extend(self.run_checks(choice.message.content, req))
        return out

    def _flag(self, call: Call, findings: list[tuple[Finding, Action]]) -> None:
        flagged = [f for f, a in findings if a == "flag"]
        if not flagged:
            return
        names = sorted({f.check for f in flagged})
        prev = call.response_headers.get(FLAGS_HEADER)
        merged = sorted(set(names) | set(prev.split(",") if prev else ()))
        call.response_headers[FLAGS_HEADER] = ",".join(merged)
        for f in flagged:
            call.event("output_flagged", check=f.check, reason=f.reason)
        self._emit(call, flagged, "flag")

    def _block(self, call: Call, findings: list[Finding], *, retried: bool = False) -> OutputCheckFailed:
        self._emit(call, findings, "block")
        after = " (after one retry)" if retried else ""
        reasons = "; ".join(f"{f.check}: {f.reason}" for f in findings)
        return OutputCheckFailed(f"the answer failed output checks{after}: {reasons}")

    def _emit(self, call: Call, findings: list[Finding], action: str) -> None:
        if self.events is None:
            return
        for f in findings:
            self.events.emit("output_check", action, request_id=call.request_id,
                             tenant=call.identity.tenant, key_id=call.identity.key_id,
                             detail={"check": f.check, "score": f.score})


class _StreamCheck:
    """Lets every chunk through and judges the whole text at the finish chunk."""

    def __init__(self, guard: OutputCheckMiddleware, call: Call, stream: ChunkStream) -> None:
        self.guard = guard
        self.call = call
        self.stream = stream
        self.parts: list[str] = []
        self.done = False

    def apply(self, chunk: ChatCompletionChunk) -> list[ChatCompletionChunk]:
        if chunk.choices:
            ch = chunk.choices[0]
            if ch.delta.content:
                self.parts.append(ch.delta.content)
            if ch.finish_reason is not None:
                self._judge()
        return [chunk]

    def finish(self) -> list[ChatCompletionChunk]:
        self._judge()
        return []

    def _judge(self) -> None:
        if self.done:
            return
        self.done = True
        findings = self.guard.run_checks("".join(self.parts), self.call.chat_request)
        self.guard._flag(self.call, findings)
        failing = [f for f, a in findings if a in ("block", "retry")]
        if failing:
            raise self.guard._block(self.call, failing)


def _retry_request(req: ChatRequest, result: ChatCompletion, failing: list[Finding]) -> ChatRequest:
    answer = result.choices[0].message.content if result.choices else None
    reasons = "; ".join(f"{f.check}: {f.reason}" for f in failing)
    return msgspec.structs.replace(req, messages=[
        *req.messages, AssistantMessage(content=answer),
        UserMessage(content=RETRY_NOTE.format(reasons=reasons))])
