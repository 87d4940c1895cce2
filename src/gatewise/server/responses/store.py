"""Stored responses, kept through the conversation store (memory, SQLite, Redis, PostgreSQL),
so a `previous_response_id` sent to any replica finds the thread another replica answered.

One stored response is one "conversation" of the store, id = the response id:
- its messages are the whole thread up to and including this response's answer, in chat's
  shape (instructions excluded: OpenAI does not carry them over), so a continuation reads the
  thread in one call and sends it upstream in front of its own input. Responses branch (two
  continuations of one response are two threads); each keeps its own copy;
- its metadata holds the Response object (for `GET /v1/responses/{id}`), the request's
  input items (for `GET /v1/responses/{id}/input_items`), the thread's id (its first
  response's) and the id of the PII vault its placeholders belong to.

No value a PII policy masks is at rest in clear text, as in conversation memory's turns.
Memory keeps the masked form because it sits inside the guardrails; a stored response is
written by the route, outside them, from what the caller received (unmasked). So before it is
stored, every text of it (the new input, the answer, the Response's instructions and output,
the input items) is masked under the policy that covered the call, with the thread's PII
vault (`Call.thread` = `thread_key`; a conversation's when the request named one): a value
gets the placeholder the upstream saw, the stored thread a continuation sends is the masked
conversation, and the PII middleware restores the continuation's answer as it does a
conversation's (`Guardrails.mask_docs`). Reading a response back (`GET /v1/responses/{id}`,
its input items) restores what the vault still holds (`Guardrails.restore`), as
`GET /v1/conversations/{id}` does; once the vault expired (`vault_ttl_s`) the placeholders
stay.

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
    thread_id: str
    vault: str  # the PII vault id (`Call.conversation` or `Call.thread`) of its placeholders


def _not_found(response_id: str, param: str | None) -> NotFoundError:
    """A response id the caller's team does not have (another team's reads the same)."""
    return NotFoundError(f"No response found with id '{response_id}'.", param=param,
                         code="response_not_found")


def scope_of(tenant: str) -> str:
    return f"responses/{tenant}"


def thread_key(thread_id: str) -> str:
    """`Call.thread` of a thread: its vault's id (`vault:<tenant>:responses/<id>`)."""
    return f"responses/{thread_id}"


class ResponseStore:
    def __init__(self, store: ConversationStore, ttl_s: float | None) -> None:
        self.store = store
        self.ttl_s = ttl_s

    async def save(self, tenant: str, response: dict[str, Any], thread: list[dict[str, Any]],
                   items: list[dict[str, Any]], *, thread_id: str, vault: str) -> None:
        await self.store.append(scope_of(tenant), response["id"], thread, ttl=self.ttl_s,
                                metadata={"response": response, "input_items": items,
                                          "thread": thread_id, "vault": vault})

    async def load(self, tenant: str, response_id: str, *, thread: bool = True,
                   param: str | None = None) -> StoredResponse:
        """The stored response; a 404 (OpenAI's shape) when the tenant has none by that id."""
        scope = scope_of(tenant)
        info = await self.store.info(scope, response_id)
        if info is None or "response" not in info.metadata:
            raise _not_found(response_id, param)
        messages = await self.store.history(scope, response_id) if thread else []
        md = info.metadata
        thread_id = md.get("thread") or response_id
        return StoredResponse(md["response"], messages, list(md.get("input_items") or ()),
                              thread_id, md.get("vault") or thread_key(thread_id))

    async def delete(self, tenant: str, response_id: str) -> None:
        if not await self.store.delete(scope_of(tenant), response_id):
            raise _not_found(response_id, None)
