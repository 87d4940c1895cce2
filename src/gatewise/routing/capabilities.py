"""What a request needs from a model, and which deployments have it.

The router must never send a tools request to a model without tools, an image to a text-only
model, a JSON schema to a model without structured output, or a prompt longer than a model's
context window: such a call can only fail upstream (or, worse, succeed while ignoring part of
the request). `needs_of` reads a request once (no JSON encoding, no tokenizer: character
counts are enough to compare against a context window); `CapabilityIndex` asks each
deployment's provider client once and caches the answer per deployment.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from gatewise.providers.base import Capabilities
from gatewise.providers.deployment import Deployment
from gatewise.types.messages import AssistantMessage, ImagePart, TextPart
from gatewise.types.requests import ChatRequest, ResponseFormatJSONSchema

CHARS_PER_TOKEN = 4  # English prose averages ~4 characters per token in BPE vocabularies
IMAGE_TOKENS = 765  # what OpenAI bills a high-detail 1024x1024 image; a fair upper guess
DEFAULT_OUTPUT_TOKENS = 256  # the answer length assumed when the caller sets no limit
# Below this many tokens every chat model fits, so the context window is not even looked up.
_SMALL_PROMPT_TOKENS = 512

# What a failed lookup or an unknown model is assumed to support: everything. A guess must
# never reject a request that would have worked.
PERMISSIVE = Capabilities(chat=True, streaming=True, tools=True, vision=True, json_schema=True,
                          embeddings=True, context_window=None)

_encode = msgspec.json.Encoder().encode


class Needs:
    """A request's requirements plus the size estimates the cost/usage strategies use."""

    __slots__ = ("context_tokens", "input_tokens", "json_schema", "output_limit",
                 "output_tokens", "streaming", "tools", "trivial", "vision")

    def __init__(self, *, tools: bool = False, vision: bool = False, json_schema: bool = False,
                 streaming: bool = False, input_tokens: int = 0,
                 output_limit: int | None = None) -> None:
        self.tools = tools
        self.vision = vision
        self.json_schema = json_schema
        self.streaming = streaming
        self.input_tokens = input_tokens
        self.output_limit = output_limit
        self.output_tokens = output_limit if output_limit is not None else DEFAULT_OUTPUT_TOKENS
        # Tokens the context window must hold: the prompt plus the caller's output cap.
        self.context_tokens = input_tokens + (output_limit or 0)
        # Every chat model can serve it, so no capability lookup is needed at all.
        self.trivial = not (tools or vision or json_schema) \
            and self.context_tokens <= _SMALL_PROMPT_TOKENS

    def missing(self, caps: Capabilities) -> str | None:
        """The first requirement `caps` does not meet, or None when it meets them all."""
        if not caps.chat:
            return "chat"
        if self.tools and not caps.tools:
            return "tools"
        if self.vision and not caps.vision:
            return "vision"
        if self.json_schema and not caps.json_schema:
            return "json_schema"
        if self.streaming and not caps.streaming:
            return "streaming"
        window = caps.context_window
        if window is not None and self.context_tokens > window:
            return "context_window"
        return None


NO_NEEDS = Needs()


def needs_of(req: ChatRequest) -> Needs:
    """One pass over the messages: character counts, image parts and tool-call arguments."""
    chars = 0
    images = 0
    for m in req.messages:
        content = m.content
        if isinstance(content, str):
            chars += len(content)
        elif content:
            for p in content:
                if isinstance(p, TextPart):
                    chars += len(p.text)
                elif isinstance(p, ImagePart):
                    images += 1
        if isinstance(m, AssistantMessage) and m.tool_calls:
            for c in m.tool_calls:
                chars += len(c.function.arguments) + len(c.function.name)
    tools = bool(req.tools)
    if tools:
        chars += len(_encode(req.tools))
    return Needs(
        tools=tools,
        vision=images > 0,
        json_schema=isinstance(req.response_format, ResponseFormatJSONSchema),
        streaming=req.stream,
        input_tokens=chars // CHARS_PER_TOKEN + images * IMAGE_TOKENS + 4 * len(req.messages),
        output_limit=req.output_limit,
    )


CapabilityLookup = Callable[[Deployment], Capabilities]


class CapabilityIndex:
    """Each deployment's `Capabilities`, asked of its provider client once and cached.

    Without a lookup (a `Router` built outside a `Gateway`) every deployment is assumed
    capable: routing then behaves as before capabilities existed.
    """

    def __init__(self, lookup: CapabilityLookup | None = None) -> None:
        self._lookup = lookup
        self._cache: dict[str, Capabilities] = {}

    @property
    def enabled(self) -> bool:
        return self._lookup is not None

    def get(self, dep: Deployment) -> Capabilities:
        caps = self._cache.get(dep.id)
        if caps is None:
            caps = PERMISSIVE
            if self._lookup is not None:
                try:
                    caps = self._lookup(dep)
                except Exception:  # no client for it (unknown wire, extra not installed):
                    caps = PERMISSIVE  # the provider call will say why, with its own error
            self._cache[dep.id] = caps
        return caps

    def missing(self, dep: Deployment, needs: Needs) -> str | None:
        if self._lookup is None or needs.trivial:
            return None
        return needs.missing(self.get(dep))

    def prime(self, deps: list[Deployment]) -> None:
        """Looks every deployment up now (at warm-up) instead of on its first request."""
        for d in deps:
            if d.problem is None:
                self.get(d)
