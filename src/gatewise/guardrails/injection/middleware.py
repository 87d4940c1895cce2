"""Prompt-injection middleware: scans a chat call's input before it leaves the gateway.

Channels:
- direct: the latest user turn (the trailing run of user messages);
- indirect: tool results of the current turn (tool messages after that user turn) and every
  message marked as retrieved context. The marking convention: a user / system / developer
  message whose `name` is one of `CONTEXT_NAMES` ("context", "retrieved", "document", "rag"), or
  whose index is listed in request metadata `gatewise_context` ("2,5": comma-separated message
  indices; metadata values are strings in OpenAI's shape). Marked messages are scanned as
  indirect only, never as the caller's own words.

Actions: `block` raises `PromptInjectionDetected` (400, `prompt_injection_detected`) naming the
channel and reasons, never the text, and the request never reaches the next handler; `flag`
records `call.event("prompt_injection", ...)` and the `x-gatewise-injection-flag` response header,
and continues. Both emit a security event. With a `flag_threshold` below the detector's
threshold, a score between the two is flagged (never blocked) whatever the action: an operator
blocks above one score and watches a lower band.

Where the scan runs: a request whose scanned texts together exceed `offload_chars` is scanned in
one job on `executor` (the guards' small dedicated pool, `Guardrails`; the loop's default
executor without one), so a burst of long prompts never stalls the event loop for the other
requests it serves; shorter ones are scanned inline, where a thread hand-off would cost more
than the scan. Targets are scanned in message order and scanning stops at the first one that
blocks, wherever it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any, Literal

from gatewise.errors import PromptInjectionDetected
from gatewise.guardrails.injection.detector import InjectionDetector, Source, Verdict
from gatewise.pipeline.core import Call, Handler
from gatewise.security.events import SecurityEventSink
from gatewise.types.messages import (
    DeveloperMessage,
    Message,
    SystemMessage,
    ToolMessage,
    UserMessage,
    text_of,
)

Action = Literal["block", "flag"]
CONTEXT_NAMES = frozenset({"context", "retrieved", "document", "rag"})
CONTEXT_METADATA_KEY = "gatewise_context"
FLAG_HEADER = "x-gatewise-injection-flag"


def _context_indices(metadata: dict[str, str] | None) -> frozenset[int]:
    raw = (metadata or {}).get(CONTEXT_METADATA_KEY, "")
    return frozenset(int(p) for p in raw.split(",") if p.strip().isdigit())


def scan_targets(messages: list[Message], metadata: dict[str, str] | None = None,
                 *, indirect: bool = True) -> Iterator[tuple[int, str, Source, str]]:
    """(message index, channel name, source, text) for every message the guard must scan."""
    marked = _context_indices(metadata)

    def is_context(i: int, m: Message) -> bool:
        if i in marked:
            return True
        return isinstance(m, UserMessage | SystemMessage | DeveloperMessage) and m.name in CONTEXT_NAMES

    last_user = next((i for i in range(len(messages) - 1, -1, -1)
                      if isinstance(messages[i], UserMessage) and not is_context(i, messages[i])), None)
    turn_start = last_user if last_user is not None else len(messages)
    while turn_start > 0 and isinstance(messages[turn_start - 1], UserMessage):
        turn_start -= 1
    for i, m in enumerate(messages):
        if is_context(i, m):
            if indirect:
                yield i, "retrieved context", "indirect", text_of(m.content)
        elif isinstance(m, UserMessage) and i >= turn_start:
            yield i, "user message", "direct", text_of(m.content)
        elif isinstance(m, ToolMessage) and i > turn_start and indirect:
            yield i, "tool result", "indirect", text_of(m.content)


class InjectionMiddleware:
    """Once per call, before the cache and the router (see `gatewise.pipeline.core`)."""

    def __init__(self, detector: InjectionDetector, *, action: Action = "block", scan_indirect: bool = True,
                 events: SecurityEventSink | None = None, offload_chars: int = 512,
                 flag_threshold: float | None = None, executor: Executor | None = None) -> None:
        self.detector = detector
        self.action = action
        self.flag_threshold = flag_threshold
        self.scan_indirect = scan_indirect
        self.events = events
        self.offload_chars = offload_chars
        self.executor = executor

    async def __call__(self, call: Call, next: Handler) -> Any:
        if call.kind == "chat":
            req = call.chat_request
            targets = [t for t in scan_targets(req.messages, req.metadata, indirect=self.scan_indirect)
                       if t[3]]
            if targets:
                if sum(len(t[3]) for t in targets) > self.offload_chars:
                    loop = asyncio.get_running_loop()
                    verdicts = await loop.run_in_executor(self.executor, self._scan_all, targets)
                else:
                    verdicts = self._scan_all(targets)
                for (index, channel, _, _), verdict in zip(targets, verdicts, strict=False):
                    if verdict.flagged:
                        self._record(call, index, channel, verdict, self.action)
                    elif self.flag_threshold is not None and verdict.score >= self.flag_threshold:
                        self._record(call, index, channel, verdict, "flag")
        return await next(call)

    def _scan_all(self, targets: list[tuple[int, str, Source, str]]) -> list[Verdict]:
        """Verdicts in target order, up to and including the first one that blocks (the
        request stops there: what follows it is never looked at)."""
        out: list[Verdict] = []
        for _, _, source, text in targets:
            verdict = self.detector.scan(text, source)
            out.append(verdict)
            if verdict.flagged and self.action == "block":
                break
        return out

    def _record(self, call: Call, index: int, channel: str, verdict: Verdict, action: Action) -> None:
        detail = {"channel": channel, "message_index": index, "score": verdict.score,
                  "layer": verdict.layer, "reasons": list(verdict.reasons)}
        if self.events is not None:
            ident = call.identity
            self.events.emit("prompt_injection", action, request_id=call.request_id,
                             tenant=ident.tenant, key_id=ident.key_id, detail=detail)
        call.event("prompt_injection", action=action, **detail)
        if action == "flag":
            call.response_headers[FLAG_HEADER] = (
                f"score={verdict.score:.3f}; layer={verdict.layer or 'none'}; message={index}")
        if action == "block":
            reasons = ", ".join(verdict.reasons) or "score above threshold"
            raise PromptInjectionDetected(
                f"prompt injection detected in {channel} (message {index}): {reasons}",
                param=f"messages[{index}]")
