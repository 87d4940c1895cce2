"""Stored responses, kept through the conversation store (memory, SQLite, Redis, PostgreSQL),
so a `previous_response_id` sent to any replica finds the thread another replica answered.

One stored response is one "conversation" of the store, id = the response id:
- its messages are the whole thread up to and including this response's answer, in chat's
  shape (instructions excluded: OpenAI does not carry them over), so a continuation reads the
  thread in one call and sends it upstream in front of its own input. Responses branch (two
  continuations of one response are two threads); each keeps its own copy;
- its metadata holds the Response object (for `GET /v1/responses/{id}`) and the request's
  input items (for `GET /v1/responses/{id}/input_items`).

Scoped to the caller's tenant, in a scope of its own (`responses/<tenant>`; a team id cannot
hold a `/`): another team's response id reads as one that does not exist, and stored
responses do not show up among `/v1/conversations`. Entries expire after `memory.ttl_s` and
fall under `memory.retention_days` like conversations do (the governance purge deletes every
scope's old entries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatewise.errors import NotFoundError
from gatewise.storage.base import ConversationStore


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    thread: list[dict[str, Any]]
    input_items: list[dict[str, Any]]


def _not_found(response_id: str, param: str | None) -> NotFoundError:
    """A response id the caller's team does not have (another team's reads the same)."""
    return NotFoundError(f"No response found with id '{response_id}'.", param=param,
                         code="response_not_found")


def scope_of(tenant: str) -> str:
    return f"responses/{tenant}"


class ResponseStore:
    def __init__(self, store: ConversationStore, ttl_s: float | None) -> None:
        self.store = store
        self.ttl_s = ttl_s

    async def save(self, tenant: str, response: dict[str, Any], thread: list[dict[str, Any]],
                   items: list[dict[str, Any]]) -> None:
        await self.store.append(scope_of(tenant), response["id"], thread, ttl=self.ttl_s,
                                metadata={"response": response, "input_items": items})

    async def load(self, tenant: str, response_id: str, *, thread: bool = True,
                   param: str | None = None) -> StoredResponse:
        """The stored response; a 404 (OpenAI's shape) when the tenant has none by that id."""
        scope = scope_of(tenant)
        info = await self.store.info(scope, response_id)
        if info is None or "response" not in info.metadata:
            raise _not_found(response_id, param)
        messages = await self.store.history(scope, response_id) if thread else []
        return StoredResponse(info.metadata["response"], messages,
                              list(info.metadata.get("input_items") or ()))

    async def delete(self, tenant: str, response_id: str) -> None:
        if not await self.store.delete(scope_of(tenant), response_id):
            raise _not_found(response_id, None)
