"""The exact cache's key: everything that changes the answer, nothing that does not.

Covered: the tenant scope (the team; the key, then the user, when there is no team; `global`
only when the alias opts in), the resolved alias and its deployment set, and the request as the
model sees it: messages, tools, tool_choice, response_format and every generation parameter
(temperature, seed, top_p, max_tokens, stop, n, penalties, logit_bias, ...).

Left out, because they do not change the answer: `model` (the resolved alias replaces it),
`stream`/`stream_options` (a stream may be served a stored completion and back), `user`,
`metadata`, `store`, `prompt_cache_key`, `safety_identifier`: per-request ids and labels. The
caller's API key secret never enters the key (only its id, and only without a team).

The request is re-encoded canonically (msgspec, keys sorted, no whitespace) from its decoded
form, so key order and whitespace in the caller's JSON never split an entry; BLAKE2b-256 of
the canonical bytes is the key.

Layout, so that invalidation is by prefix: `cache:v1:<scope>:<alias>:<request>`, each part a
hash (scope and alias 16 hex digits, the request 64). Everything of one team is under
`scope_prefix`, one alias of it under `alias_prefix`; a tag's set of entry keys is under the
scope too (`tag_key`), so it goes with its team's entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import msgspec

from gatewise.pipeline.core import Identity
from gatewise.types.requests import ChatRequest

PREFIX = "cache:v1:"
# Bookkeeping beside the entries (scopes and aliases seen, statistics): never under PREFIX, so
# invalidating everything leaves it.
META_PREFIX = "cachemeta:v1:"
_encode = msgspec.json.Encoder(order="sorted").encode
_NEUTRAL = {"model": "", "stream": False, "stream_options": None, "user": None,
            "metadata": None, "store": None, "prompt_cache_key": None,
            "safety_identifier": None}


def scope_of(identity: Identity, *, global_scope: bool = False) -> str:
    """Who may share an entry: one team, else one key, else one user, within a tenant."""
    if global_scope:
        return "global"
    if identity.team:
        who = f"team:{identity.team}"
    elif identity.key_id:
        who = f"key:{identity.key_id}"
    elif identity.user:
        who = f"user:{identity.user}"
    else:
        who = "anonymous"
    return f"{identity.tenant}/{who}"


def canonical_request(req: ChatRequest) -> bytes:
    """The request as the model sees it, in one byte form whatever JSON it came from."""
    return _encode(msgspec.structs.replace(req, **_NEUTRAL))


def _short(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def scope_prefix(scope: str) -> str:
    """Every key of one scope starts with this (for invalidation by prefix)."""
    return PREFIX + _short(scope) + ":"


def alias_prefix(scope: str, alias: str) -> str:
    """Every entry of one alias within one scope starts with this."""
    return scope_prefix(scope) + _short(alias) + ":"


_SCOPE_LEN = len(scope_prefix(""))


def tag_key(entry_key: str, tag: str) -> str:
    """The set of entry keys carrying `tag`, in the entry's scope."""
    return entry_key[:_SCOPE_LEN] + "tag:" + tag


def scope_tag_key(scope: str, tag: str) -> str:
    return scope_prefix(scope) + "tag:" + tag


def cache_key(scope: str, alias: str, deployments: Sequence[str], req: ChatRequest) -> str:
    h = hashlib.blake2b(digest_size=32)
    for part in (scope, alias, "\x1f".join(deployments)):
        h.update(part.encode())
        h.update(b"\x00")
    h.update(canonical_request(req))
    return alias_prefix(scope, alias) + h.hexdigest()
