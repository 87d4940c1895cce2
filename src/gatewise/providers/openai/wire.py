"""URLs, headers and bodies for OpenAI-compatible hosts, Azure's deployment URLs included."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec

from gatewise.providers.base import Target
from gatewise.types.requests import ChatRequest, StreamOptions

_encode = msgspec.json.Encoder().encode
_USAGE_ON = StreamOptions(include_usage=True)


def url_for(target: Target, path: str) -> str:
    """`path` is 'chat/completions', 'embeddings' or 'models'."""
    base = target.api_base.rstrip("/")
    if target.url_style == "azure":
        version = target.api_version or "2024-10-21"
        if path == "models":
            return f"{base}/openai/models?api-version={quote(version)}"
        # The deployment is one path segment, percent-encoded: a name cannot add segments,
        # a query or a fragment. The version comes from config only.
        deployment = quote(target.model, safe="")
        return f"{base}/openai/deployments/{deployment}/{path}?api-version={quote(version)}"
    return f"{base}/{path}"


def headers_for(target: Target, *, json_body: bool = True) -> dict[str, str]:
    h: dict[str, str] = {"accept": "application/json"}
    if json_body:
        h["content-type"] = "application/json"
    key = target.api_key
    if key:
        if target.auth == "api-key":
            h["api-key"] = key
        elif target.auth == "bearer":
            h["authorization"] = f"Bearer {key}"
    if target.headers:
        h.update(target.headers)
    return h


def chat_body(req: ChatRequest, target: Target) -> bytes:
    """The request as the host expects it: our canonical shape with the upstream model name.

    Streams always ask for usage when the host supports it, so accounting gets real numbers;
    the pipeline hides the usage chunk from callers who did not ask for it."""
    changes: dict[str, Any] = {"model": target.model}
    if req.stream and target.extra.get("stream_usage", True) and not req.wants_usage_in_stream:
        changes["stream_options"] = _USAGE_ON
    if target.params:
        for k, v in target.params.items():
            if getattr(req, k, None) is None:
                changes[k] = v
    return _encode(msgspec.structs.replace(req, **changes))
