"""`MemoryConversations`: conversations in this process's memory (tests, a one-off CLI chat).

Idle conversations expire after their `ttl` on the injected clock; expired ones are dropped
when next touched or listed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from gatewise.storage.base import ConversationInfo


class MemoryConversations:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # (scope, id) -> (info, messages, expires or None)
        self._convs: dict[tuple[str, str], tuple[ConversationInfo, list[dict[str, Any]],
                                                  float | None]] = {}

    def _live(self, scope: str, conversation: str) -> tuple[ConversationInfo,
                                                           list[dict[str, Any]]] | None:
        entry = self._convs.get((scope, conversation))
        if entry is None:
            return None
        if entry[2] is not None and entry[2] <= self._clock():
            del self._convs[(scope, conversation)]
            return None
        return entry[0], entry[1]

    async def append(self, scope: str, conversation: str, messages: Sequence[dict[str, Any]],
                     *, ttl: float | None = None,
                     metadata: dict[str, Any] | None = None) -> int:
        now = self._clock()
        live = self._live(scope, conversation)
        info, turns = live if live is not None else (
            ConversationInfo(conversation, scope, now, now, 0), [])
        turns.extend(dict(m) for m in messages)
        info.updated, info.turns = now, len(turns)
        if metadata:
            info.metadata.update(metadata)
        self._convs[(scope, conversation)] = (info, turns, now + ttl if ttl else None)
        return info.turns

    async def history(self, scope: str, conversation: str, *, start: int = 0,
                      limit: int | None = None) -> list[dict[str, Any]]:
        live = self._live(scope, conversation)
        turns = live[1][start:] if live is not None else []
        return [dict(m) for m in (turns[-limit:] if limit else turns)]

    async def info(self, scope: str, conversation: str) -> ConversationInfo | None:
        live = self._live(scope, conversation)
        return replace(live[0], metadata=dict(live[0].metadata)) if live is not None else None

    async def list(self, scope: str, *, limit: int = 100) -> list[ConversationInfo]:
        found = [info for (s, c) in list(self._convs)
                 if s == scope and (info := await self.info(s, c)) is not None]
        return sorted(found, key=lambda i: i.updated, reverse=True)[:limit]

    async def set_summary(self, scope: str, conversation: str, summary: str,
                          summarised: int) -> None:
        live = self._live(scope, conversation)
        if live is not None:
            live[0].summary, live[0].summarised = summary, summarised

    async def delete(self, scope: str, conversation: str) -> bool:
        existed = self._live(scope, conversation) is not None
        self._convs.pop((scope, conversation), None)
        return existed

    async def delete_before(self, ts: float, limit: int) -> int:
        old = [k for k, (info, _, _) in self._convs.items() if info.updated < ts][:limit]
        for k in old:
            del self._convs[k]
        return len(old)

    async def aclose(self) -> None:
        self._convs.clear()
