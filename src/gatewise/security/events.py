"""Security events: every guard decision, denied authentication and budget block is one event,
sent to the log, a metric and the audit log. Guards depend on this small protocol only, so
they do not know where events end up."""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger("gatewise.security")


class SecurityEventSink(Protocol):
    def emit(self, kind: str, action: str, *, request_id: str | None = None,
             tenant: str | None = None, key_id: str | None = None,
             detail: dict[str, Any] | None = None) -> None:
        """`kind`: what was found (e.g. `pii`, `prompt_injection`, `tool_call`, `auth`);
        `action`: what was done (`block`, `mask`, `flag`, `deny`). `detail` never carries
        prompt text or secrets: entity types, counts, scores, rule names."""
        ...


class LogEventSink:
    """The default sink: a structured warning per event (the gateway adds metric + audit)."""

    def emit(self, kind: str, action: str, *, request_id: str | None = None,
             tenant: str | None = None, key_id: str | None = None,
             detail: dict[str, Any] | None = None) -> None:
        log.warning("security event", extra={"kind": kind, "action": action,
                                              "request_id": request_id, "tenant": tenant,
                                              "key_id": key_id, "detail": detail or {}})
