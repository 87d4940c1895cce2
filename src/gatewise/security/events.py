"""Security events: every guard decision, denied authentication and budget block is one event,
sent to the log, a metric and the audit log. Guards depend on this small protocol only, so
they do not know where events end up."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from gatewise.observability.recent import RecentFeed
from gatewise.pipeline.background import BackgroundTasks

log = logging.getLogger("gatewise.security")


class SecurityEventSink(Protocol):
    def emit(self, kind: str, action: str, *, request_id: str | None = None,
             tenant: str | None = None, key_id: str | None = None,
             detail: dict[str, Any] | None = None) -> None:
        """`kind`: what was found (e.g. `pii`, `prompt_injection`, `tool_call`, `auth`);
        `action`: what was done (`block`, `mask`, `flag`, `deny`). `detail` never carries
        prompt text or secrets: entity types, counts, scores, rule names."""
        ...


def log_event(kind: str, action: str, *, request_id: str | None = None,
              tenant: str | None = None, key_id: str | None = None,
              detail: dict[str, Any] | None = None) -> None:
    log.warning("security event", extra={"kind": kind, "action": action,
                                          "request_id": request_id, "tenant": tenant,
                                          "key_id": key_id, "detail": detail or {}})


class LogEventSink:
    """The default sink: a structured warning per event (the gateway adds metric + audit)."""

    emit = staticmethod(log_event)


class AuditLike(Protocol):
    async def record(self, actor: str, action: str, target: str | None = None,
                     **detail: Any) -> Any: ...


# Event kinds that are a guardrail's decision, and the guard's name in
# `gatewise_guard_decisions_total` and in the request log line's `guards` field.
GUARD_OF_KIND = {"pii": "pii", "prompt_injection": "injection", "tool_call": "tool_call",
                 "output_check": "output"}


class GatewayEventSink:
    """Log + metric for every event, and an audit row for every event but denied
    authentications (attacker-driven and high-volume: they would flood the append-only log;
    the metric and the log line count them). The audit write runs in the background, so a
    guard on the hot path never waits on the store.

    `guards`: a counter labelled (guard, action) that also receives the guardrails' events
    (`GUARD_OF_KIND`); authentication and access denials are not guard decisions."""

    def __init__(self, counter: Any, audit: AuditLike | None, *, guards: Any = None) -> None:
        self._counter = counter
        self._guards = guards
        self._audit = audit
        self._writes = BackgroundTasks("auditing a security event")
        # The web console's guard events page: the latest events of this process, bounded.
        self.recent = RecentFeed(1000)

    def emit(self, kind: str, action: str, *, request_id: str | None = None,
             tenant: str | None = None, key_id: str | None = None,
             detail: dict[str, Any] | None = None) -> None:
        log_event(kind, action, request_id=request_id, tenant=tenant, key_id=key_id,
                  detail=detail)
        self.recent.add({"ts": time.time(), "kind": kind, "action": action,
                         "request_id": request_id, "tenant": tenant, "key_id": key_id,
                         "detail": dict(detail or {})})
        if self._counter is not None:
            self._counter.inc((kind, action))
        if self._guards is not None:
            guard = GUARD_OF_KIND.get(kind)
            if guard is not None:
                self._guards.inc((guard, action))
        if self._audit is None or kind == "auth":
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        info = dict(detail or {})
        if request_id:
            info["request_id"] = request_id
        if tenant:
            info["tenant"] = tenant
        self._writes.spawn(self._audit.record(key_id or "anonymous", f"security.{kind}",
                                              action, **info))

    async def drain(self) -> None:
        await self._writes.drain()
