"""Security events: every guard decision, denied authentication and budget block is one event,
sent to the log, a metric and the audit log. Guards depend on this small protocol only, so
they do not know where events end up."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from gatewise.observability.logs import FIELDS
from gatewise.observability.recent import Feed, RecentFeed
from gatewise.observability.telemetry import RequestLine

log = logging.getLogger("gatewise.security")


class SecurityEventSink(Protocol):
    def emit(self, kind: str, action: str, *, request_id: str | None = None,
             tenant: str | None = None, key_id: str | None = None,
             detail: dict[str, Any] | None = None) -> None:
        """`kind`: what was found (e.g. `pii`, `prompt_injection`, `tool_call`, `auth`);
        `action`: what was done (`block`, `mask`, `flag`, `deny`). `detail` never carries
        prompt text or secrets: entity types, counts, scores, rule names."""
        ...


def event_fields(kind: str, action: str, request_id: str | None, tenant: str | None,
                 key_id: str | None, detail: dict[str, Any] | None) -> dict[str, Any]:
    """A security event's fields, as its log line and the console's feed carry them."""
    return {"kind": kind, "action": action, "request_id": request_id, "tenant": tenant,
            "key_id": key_id, "detail": detail if detail is not None else {}}


def log_event(kind: str, action: str, *, request_id: str | None = None,
              tenant: str | None = None, key_id: str | None = None,
              detail: dict[str, Any] | None = None) -> None:
    if log.isEnabledFor(logging.WARNING):
        fields = event_fields(kind, action, request_id, tenant, key_id, detail)
        log.warning("security event", extra={**fields, FIELDS: fields})


class LogEventSink:
    """The default sink: a structured warning per event (the gateway adds metric + audit)."""

    emit = staticmethod(log_event)


class AuditLike(Protocol):
    def record_later(self, actor: str, action: str, target: str | None = None,
                     **detail: Any) -> None: ...

    async def flush(self) -> int: ...


# Event kinds that are a guardrail's decision, and the guard's name in
# `gatewise_guard_decisions_total` and in the request log line's `guards` field.
GUARD_OF_KIND = {"pii": "pii", "prompt_injection": "injection", "tool_call": "tool_call",
                 "output_check": "output"}


class GatewayEventSink:
    """Log + metric for every event, and an audit row for every event but denied
    authentications (attacker-driven and high-volume: they would flood the append-only log;
    the metric and the log line count them). The audit row is batched (`AuditLog.record_later`),
    so a guard on the hot path never waits on the store, and the log line is made the
    request line's way (`RequestLine`: one dict of fields, no per-field checks).

    `guards`: a counter labelled (guard, action) that also receives the guardrails' events
    (`GUARD_OF_KIND`); authentication and access denials are not guard decisions.
    `recent`: the web console's guard events feed (`observability.recent_shared.
    build_security_feed`: every replica's with Redis); by default this process's ring."""

    def __init__(self, counter: Any, audit: AuditLike | None, *, guards: Any = None,
                 recent: Feed | None = None) -> None:
        self._counter = counter
        self._guards = guards
        self._audit = audit
        # One per guarded request under load: batched with the request lines, not written
        # (one system call each) the moment it is made, as other warnings are.
        self._line = RequestLine(log, "security event", batched=True)
        # The web console's guard events page: the latest events, bounded (the owner starts
        # and closes it: a shared feed sends its batches from a background task).
        self.recent: Feed = recent if recent is not None else RecentFeed(1000)

    def emit(self, kind: str, action: str, *, request_id: str | None = None,
             tenant: str | None = None, key_id: str | None = None,
             detail: dict[str, Any] | None = None) -> None:
        fields = event_fields(kind, action, request_id, tenant, key_id, detail)
        if log.isEnabledFor(logging.WARNING):
            self._line.emit(logging.WARNING, fields)
        self.recent.add({**fields, "ts": time.time(), "detail": dict(fields["detail"])})
        if self._counter is not None:
            self._counter.inc((kind, action))
        if self._guards is not None:
            guard = GUARD_OF_KIND.get(kind)
            if guard is not None:
                self._guards.inc((guard, action))
        if self._audit is None or kind == "auth":
            return
        try:  # the batch's flusher lives on the loop: an emit from elsewhere is not audited
            asyncio.get_running_loop()
        except RuntimeError:
            return
        info = dict(fields["detail"])
        if request_id:
            info["request_id"] = request_id
        if tenant:
            info["tenant"] = tenant
        try:
            self._audit.record_later(key_id or "anonymous", f"security.{kind}", action, **info)
        except ValueError as exc:  # a detail the audit log refuses: the line and metric stay
            log.error("security event not audited: %s", exc)

    async def drain(self) -> None:
        """Writes the audit rows still batched."""
        if self._audit is not None:
            await self._audit.flush()
