"""`ConversationMemory`: conversations as the API, the library and the middleware see them.

Every operation is scoped to the caller's tenant (a team's id, or `default`): another
team's conversation id reads as one that does not exist (404), so ids leak nothing.
Deleting a conversation deletes its turns, its summary and its PII vault entries (`forget`).
Turns are stored masked when a PII policy masks (the middleware sits inside the guardrails);
reading a conversation back (`get`) restores the placeholders its vault still holds
(`restore`), so the caller's team reads its own text; once the vault expired they stay.
Retention (`memory.retention_days`) is the governance purge's (`security/retention.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gatewise.errors import ConversationNotFoundError
from gatewise.memory.summary import Summariser
from gatewise.memory.window import ContextWindows
from gatewise.pipeline.core import ANONYMOUS, Identity
from gatewise.storage.base import ConversationInfo, ConversationStore

Forget = Callable[[str, str], Awaitable[None]]
# (tenant, conversation, JSON document) -> a copy with the vault's placeholders restored.
Restore = Callable[[str, str, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation: what the store knows of it, and every stored message, oldest first
    (the summarised ones included: a summary shortens prompts, never the record)."""

    info: ConversationInfo
    messages: list[dict[str, Any]]


class ConversationMemory:
    def __init__(self, store: ConversationStore, windows: ContextWindows, *,
                 summariser: Summariser | None, ttl_s: float | None,
                 forget: Forget | None = None, restore: Restore | None = None) -> None:
        self.store = store
        self.windows = windows
        self.summariser = summariser
        self.ttl_s = ttl_s
        self.forget = forget
        self.restore = restore

    async def append(self, scope: str, conversation: str,
                     messages: Sequence[dict[str, Any]]) -> int:
        return await self.store.append(scope, conversation, messages, ttl=self.ttl_s)

    async def list(self, *, identity: Identity = ANONYMOUS,
                   limit: int = 100) -> list[ConversationInfo]:
        """The caller's team's conversations, most recently updated first."""
        return await self.store.list(identity.tenant, limit=limit)

    async def get(self, conversation: str, *, identity: Identity = ANONYMOUS) -> Conversation:
        info = await self.store.info(identity.tenant, conversation)
        if info is None:
            raise ConversationNotFoundError(f"no conversation {conversation!r}",
                                            param="conversation")
        messages = await self.store.history(identity.tenant, conversation)
        if self.restore is not None:
            doc = await self.restore(identity.tenant, conversation,
                                     {"messages": messages, "summary": {"content": info.summary}})
            messages = doc["messages"]
            info = dataclasses.replace(info, summary=doc["summary"]["content"])
        return Conversation(info, messages)

    async def delete(self, conversation: str, *, identity: Identity = ANONYMOUS) -> None:
        """Turns, summary and the conversation's PII vault; 404 if it does not exist."""
        if not await self.store.delete(identity.tenant, conversation):
            raise ConversationNotFoundError(f"no conversation {conversation!r}",
                                            param="conversation")
        if self.forget is not None:
            await self.forget(identity.tenant, conversation)
