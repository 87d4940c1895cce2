"""Schemathesis hooks for the API fuzz run (`fuzz_harness.py`), loaded by the schemathesis CLI
through `SCHEMATHESIS_HOOKS=tests.server.fuzz_hooks`.

Two things, both narrow:

- A deterministic share of the generated chat and embeddings bodies ask for a configured
  alias (names in `GATEWISE_FUZZ_MODELS`) instead of a random model name, so the run reaches
  the success path (and checks the 200 bodies against the document) instead of stopping at
  404 on almost every case. Schemathesis re-validates a body a hook changed, so a case stays
  correctly labelled positive or negative.
- Three rules of a chat request have no JSON Schema spelling (tool names are unique; a named
  `tool_choice` must name one of `tools`; a tool message must answer an earlier assistant
  message's tool call). The document states them in words (`CHAT_REQUEST_RULES`); a
  "schema-valid request rejected" failure whose 400 names exactly one of those fields is
  dropped. On Anthropic's Messages routes (the same rules, errors without `param`), one whose
  400 message is one of those rules' is dropped. The Responses route (`/v1/responses`) is
  checked by the same rules, named as the chat request's fields; it also refuses a NUL
  character in any string (code `invalid_characters`, stated in words), dropped the same way.
- Whether a loader can read an uploaded document depends on its content (a PDF's structure,
  bytes that are UTF-8, text left after markup is stripped, a form's `metadata` being JSON),
  which no schema states: on the knowledge-base upload route, a "schema-valid request
  rejected" failure answered 415 `unsupported_document`, 400 `empty_document` or 400 naming
  `metadata` is dropped. So is a search's 400 naming `rerank` when the gateway has no
  `rag.rerank_model` (the document says so; it is one document for every configuration).
- A "schema-valid request rejected" failure whose path parameter breaks the parameter's own
  schema (the stateful phase fills it, unchecked, from a like-named field of an earlier
  response, null included) is dropped: the request was not schema-valid. So is a
  "schema-violating request accepted" whose violation is a multipart form field's type: a
  form field is text on the wire, so a field mutated to a number arrives as valid text.
  Nothing else is filtered.
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Any

import schemathesis

_MODELS = [m for m in os.environ.get("GATEWISE_FUZZ_MODELS", "").split(",") if m]
# Routes whose body is a chat request: completions, and the estimates before sending.
_CHAT_PATHS = ("/v1/chat/completions", "/v1/tokens/count", "/v1/cost/estimate",
               # Responses API: translated to a chat request and checked by the same rules,
               # named as the chat request's fields (`server/responses/inbound.py`).
               "/v1/responses")
# Anthropic's Messages API (`server/routes/messages.py`): chat requests in Anthropic's shape,
# checked by the same rules, answered with Anthropic's errors (no `param`: the message says).
_MESSAGES_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
_CALL_PATHS = (*_CHAT_PATHS, "/v1/embeddings", *_MESSAGES_PATHS)
# (param, how the message starts) of the three rules, as `validation.check_chat_request` says them.
_UNSTATABLE = (
    (re.compile(r"tools\[\d+\]\.function\.name"), "duplicate tool name"),
    (re.compile(r"tool_choice\.function\.name"), "tool_choice names"),
    (re.compile(r"messages\[\d+\]\.tool_call_id"), "tool message answers"),
)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Positive cases only: a negative case's broken part may be its model name."""
    body = case.body
    if (not _MODELS or case.operation.path not in _CALL_PATHS or not isinstance(body, dict)
            or not isinstance(body.get("model"), str)
            or case.meta is None or case.meta.generation.mode.is_negative):
        return case
    # Three in four bodies, chosen by their content: the same every run (deterministic mode).
    digest = zlib.crc32(repr(sorted(body.items(), key=lambda kv: str(kv[0]))).encode())
    if digest % 4:
        case.body = {**body, "model": _MODELS[digest % len(_MODELS)]}
    return case


_UPLOAD_PATH = "/v1/rag/collections/{collection}/documents"
_SEARCH_PATH = "/v1/rag/collections/{collection}/search"
_UNREADABLE = {(415, "unsupported_document"), (400, "empty_document")}


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but the documented rules JSON Schema cannot state, and "schema-valid
    request rejected" claims about a request that was not schema-valid: in the stateful phase
    schemathesis fills a path parameter from an earlier response's field of the same name,
    unchecked, so a `key_id` that was null in a security event became `/admin/keys/None`."""
    if failure.code == "ST201" and (case.media_type or "").startswith("multipart/") \
            and "violates `type`" in str(failure.message):
        return False  # a form field is text on the wire: a number "mutation" arrives as text
    if failure.code == "ST202" and not all(
            p.is_valid(case.path_parameters[p.name]) for p in case.operation.path_parameters
            if case.path_parameters and p.name in case.path_parameters):
        return False
    if failure.code == "ST202" and case.operation.path in _MESSAGES_PATHS \
            and response.status_code == 400:
        try:
            message = str(response.json()["error"]["message"])
        except Exception:
            return True
        return not any(message.startswith(m) for _, m in _UNSTATABLE)
    if failure.code != "ST202" \
            or case.operation.path not in (*_CHAT_PATHS, _UPLOAD_PATH, _SEARCH_PATH) \
            or response.status_code not in (400, 415):
        return True
    try:
        error = response.json()["error"]
    except Exception:
        return True
    param, message = str(error.get("param")), str(error.get("message"))
    if case.operation.path == _SEARCH_PATH:
        return not (response.status_code == 400 and param == "rerank")
    if case.operation.path == _UPLOAD_PATH:
        return not ((response.status_code, error.get("code")) in _UNREADABLE
                    or (response.status_code == 400 and param == "metadata"))
    if case.operation.path == "/v1/responses" and error.get("code") == "invalid_characters":
        return False  # no string may hold a NUL (stated in words: every string, free-form too)
    return not (error.get("code") == "invalid_request"
                and any(p.fullmatch(param) and message.startswith(m) for p, m in _UNSTATABLE))
