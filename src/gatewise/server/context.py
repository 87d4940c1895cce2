"""What every route handler gets: the ASGI triple, the gateway and the request id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gatewise.gateway import Gateway
from gatewise.pipeline.core import ANONYMOUS, Identity
from gatewise.server.http import Receive, Scope, Send, header, read_body
from gatewise.types.ids import unique_suffix

if TYPE_CHECKING:
    from gatewise.server.lifecycle import RequestGuard

_SAFE_ID = re.compile(rb"^[A-Za-z0-9_.:\-]{1,128}$")


@dataclass(slots=True)
class RequestContext:
    scope: Scope
    receive: Receive
    send: Send
    gateway: Gateway
    request_id: str
    max_body: int
    # Who called: the master key's or a virtual key's identity (ANONYMOUS when the gateway
    # runs without a master key, i.e. unauthenticated local use).
    identity: Identity = ANONYMOUS
    # Set for routes that run a gateway call (`lifecycle.InFlight.run`): cuts the request when
    # its client leaves or the shutdown grace period ends.
    guard: RequestGuard | None = None

    async def read_body(self) -> bytes:
        """The request body (bounded by `max_body`); then, under a guard, arms the watch for the
        client leaving, which from here on is all `receive` can report (`lifecycle`)."""
        body = await read_body(self.scope, self.receive, self.max_body)
        if self.guard is not None:
            self.guard.watch(self.receive)
        return body

    @staticmethod
    def request_id_from(scope: Scope, generated: str) -> str:
        """Honours a caller's `x-request-id` when it is a sane token, for end-to-end tracing."""
        given = header(scope, b"x-request-id")
        if given is not None and _SAFE_ID.match(given):
            return given.decode()
        return generated or f"req_{unique_suffix()}"
