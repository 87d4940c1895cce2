"""Cache warming: run a list of chat requests through the whole chain (guards, routing,
accounting, the cache) so that their answers are stored before real traffic asks.

Each item is a chat request body, with optional `team` or `key` beside it naming whose
entry it becomes (the cache is scoped by team: a warmed entry serves that team only). At
most `concurrency` requests are in flight. A request the cache answered already is
`skipped`, one it may not store (sampled, `no-store`) too; one that failed is `failed` with
its reason (warming goes on). Takes a `Runner`, never the gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gatewise.cache.middleware import HEADER
from gatewise.errors import GatewayError, InvalidRequestError
from gatewise.pipeline.core import ANONYMOUS, Call, Identity
from gatewise.pipeline.runner import Runner
from gatewise.types.validation import chat_request_from_dict

# Beside the request body: whose entry it becomes.
OWNER_FIELDS = ("team", "key")


@dataclass(slots=True)
class WarmReport:
    total: int = 0
    stored: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (item number, reason)

    @property
    def done(self) -> int:
        return self.stored + self.skipped + self.failed

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "stored": self.stored, "skipped": self.skipped,
                "failed": self.failed,
                "errors": [{"item": n, "error": e} for n, e in self.errors]}


async def default_identity(item: dict[str, Any]) -> Identity:
    """`team` names the team; a `key` needs the gateway's key store (see the CLI)."""
    team = item.get("team")
    if "key" in item:
        raise InvalidRequestError("a 'key' needs the gateway to authenticate it", param="key")
    if team is None:
        return ANONYMOUS
    if not isinstance(team, str) or not team:
        raise InvalidRequestError("'team' must be a team id", param="team")
    return Identity(team=team, key_id=f"warm:{team}")


async def warm(runner: Runner, items: Iterable[tuple[int, dict[str, Any] | str]], *,
               total: int, concurrency: int = 8,
               identify: Callable[[dict[str, Any]], Awaitable[Identity]] = default_identity,
               progress: Callable[[WarmReport], None] | None = None) -> WarmReport:
    """`items`: (item number, request body), or (number, why it could not be read)."""
    report = WarmReport(total=total)
    queue = iter(items)

    def fail(n: int, reason: str) -> None:
        report.failed += 1
        report.errors.append((n, reason))

    async def one(n: int, item: dict[str, Any]) -> None:
        try:
            identity = await identify(item)
            body = {k: v for k, v in item.items() if k not in OWNER_FIELDS}
            body.pop("stream", None)
            body.pop("stream_options", None)
            call = Call("chat", chat_request_from_dict(body), identity)
            await runner.run(call)
        except GatewayError as exc:
            fail(n, exc.public_message())
            return
        if call.response_headers.get(HEADER) == "miss":
            report.stored += 1
        else:
            report.skipped += 1

    async def worker() -> None:
        for n, item in queue:  # one iterator shared by every worker
            if isinstance(item, str):
                fail(n, item)
            else:
                await one(n, item)
            if progress is not None:
                progress(report)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return report
