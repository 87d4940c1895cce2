"""`Titles` (`Gateway.titles`): an epic title from a description, as a chat call through the
whole chain.

A title request becomes a chat completion of the built-in prompt `title` (`prompt.py`): the
description is the user message, style, maximum length, category and example titles are the
template's variables. It then runs like any chat call a client sends (`Runner.run`): access,
rate limits, budgets, guardrails, the response cache (exact and semantic), routing,
retries and the usage ledger all apply, and a request refused at validation
(`spec.decode_title_request`) never reaches the chain, so nothing is reserved or recorded for it.

What comes back is post-processed (`postprocess.py`) into a bare title of at most
`max_length` characters; an answer with no title in it is a 502 (`empty_title`), never a
200 with an empty string. A streamed title yields deltas that spell the final title
(`TitleStream`), a cached one included.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gatewise.errors import ModelNotFoundRequestError, ProviderResponseError
from gatewise.pipeline.core import ANONYMOUS, Call, Identity
from gatewise.pipeline.runner import Runner
from gatewise.pipeline.stream import ChunkStream
from gatewise.titles.postprocess import StreamCleaner, clean_title
from gatewise.titles.prompt import PROMPT_NAME
from gatewise.titles.spec import TitleRequest, title_request_from
from gatewise.types.depth import MAX_JSON_DEPTH
from gatewise.types.ids import unique_suffix
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.validation import chat_request_from_dict

CacheResult = Literal["hit", "semantic_hit", "miss"]
CACHE_HEADER = "x-gatewise-cache"
# The chain's cache header → the contract's words (a bypassed or uncached call is a miss).
_CACHE_RESULTS: dict[str, CacheResult] = {"hit": "hit", "semantic-hit": "semantic_hit"}


def cache_result(call: Call) -> CacheResult:
    """How the response cache served `call`, in the contract's words."""
    return _CACHE_RESULTS.get(call.response_headers.get(CACHE_HEADER, ""), "miss")


@dataclass(slots=True)
class Title:
    """A generated title and what it took."""

    title: str
    model: str
    style: str
    category: str | None
    cached: bool
    cache: CacheResult
    usage: Usage | None
    cost_usd: float | None
    id: str
    created: int
    request_id: str

    def to_dict(self) -> dict[str, Any]:
        """The `title` object of `/v1/titles` (the last frame of a stream)."""
        u = self.usage
        return {"id": self.id, "object": "title", "created": self.created, "model": self.model,
                "title": self.title, "style": self.style, "category": self.category,
                "cached": self.cached,
                "usage": {"prompt_tokens": u.prompt_tokens if u else 0,
                          "completion_tokens": u.completion_tokens if u else 0,
                          "total_tokens": u.total_tokens if u else 0},
                "cost_usd": self.cost_usd}


def max_tokens_for(max_length: int) -> int:
    """Room for the title and a little framing a model adds (quotes, a label), and no more:
    the budget reservation and a rambling model's cost stay small. English runs ~4 characters
    a token; 3 leaves room for short words, punctuation and other languages."""
    return math.ceil(max_length / 3) + 16


class TitleStream:
    """`async for delta in stream`: pieces of the title as they arrive (they spell the final
    title); `.result` is the whole `Title` once the iteration ended."""

    def __init__(self, opener: Callable[[], Coroutine[Any, Any, Any]],
                 finish: Callable[[str, Usage | None], Title], max_length: int) -> None:
        self._opener = opener
        self._finish = finish
        self._cleaner = StreamCleaner(max_length)
        self._iter: AsyncIterator[str] | None = None
        self._stream: ChunkStream | None = None
        self.result: Title | None = None

    def __aiter__(self) -> TitleStream:
        return self

    async def __anext__(self) -> str:
        if self._iter is None:
            self._iter = self._deltas()
        return await self._iter.__anext__()

    async def start(self) -> None:
        """Runs the call up to its first chunk, so a refusal (a 4xx, an upstream failure before
        the first byte) raises here, before a server has sent any header."""
        if self._stream is None:
            out = await self._opener()
            assert isinstance(out, ChunkStream)
            self._stream = out

    async def _deltas(self) -> AsyncIterator[str]:
        await self.start()
        assert self._stream is not None
        usage: Usage | None = None
        async for chunk in self._stream:
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.choices:
                text = chunk.choices[0].delta.content
                if text:
                    piece = self._cleaner.feed(text)
                    if piece:
                        yield piece
        rest = self._cleaner.finish()
        self.result = self._finish(self._cleaner.title, usage or self._stream.call.usage)
        if rest:
            yield rest

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()


class Titles:
    """`runner` runs calls through the chain (the gateway, as a `Runner`: this feature never
    imports the composition root); `default_model()` is the title model when a request names
    none (`titles.model`, else the default alias)."""

    def __init__(self, runner: Runner, *, default_model: Callable[[], str | None],
                 temperature: float, run_sync: Callable[[Coroutine[Any, Any, Any]], Any],
                 max_depth: int = MAX_JSON_DEPTH, clock: Callable[[], float] = time.time) -> None:
        self._runner = runner
        self._default_model = default_model
        self.temperature = temperature
        self._run_sync = run_sync
        self.max_depth = max_depth
        self._clock = clock

    # -- what the server and the library share ------------------------------------------------
    def prepare(self, req: TitleRequest, identity: Identity = ANONYMOUS, *,
                request_id: str | None = None,
                request_headers: Sequence[tuple[bytes, bytes]] = (),
                cache: dict[str, Any] | None = None) -> Call:
        """The chat call that asks for `req`'s title (not run yet)."""
        model = req.model or self._default_model()
        if not model:  # the implied model does not exist: a 404, as for an unknown alias
            raise ModelNotFoundRequestError("no model given, and this gateway configures no "
                                            "titles.model or default_model", param="model")
        body: dict[str, Any] = {
            "model": model, "messages": [{"role": "user", "content": req.text}],
            "max_tokens": max_tokens_for(req.max_length), "temperature": self.temperature,
            "metadata": {"request_type": "title"}}
        if req.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if req.user is not None:
            body["user"] = req.user
        call = Call("chat", chat_request_from_dict(body), identity, request_id=request_id,
                    request_headers=request_headers)
        call.cache_options = cache
        variables: dict[str, Any] = {"style": req.style, "max_length": req.max_length}
        if req.category is not None:
            variables["category"] = req.category
        if req.examples:
            variables["examples"] = [e.strip() for e in req.examples]
        call.prompt = (PROMPT_NAME, variables)
        return call

    async def complete(self, call: Call, req: TitleRequest) -> Title:
        """Runs a non-streaming call from `prepare`; its title, cleaned."""
        out = await self._runner.run(call)
        assert isinstance(out, ChatCompletion)
        raw = out.choices[0].message.content if out.choices else None
        return self.title_of(call, req, clean_title(raw or "", req.max_length), out.usage)

    def stream(self, call: Call, req: TitleRequest) -> TitleStream:
        """A streaming call from `prepare`, as title deltas."""

        async def opener() -> Any:
            return await self._runner.run(call)

        return TitleStream(opener, lambda title, usage: self.title_of(call, req, title, usage),
                           req.max_length)

    def title_of(self, call: Call, req: TitleRequest, title: str, usage: Usage | None) -> Title:
        if not title:
            raise ProviderResponseError("the model answered without a title", code="empty_title",
                                        model=call.alias)
        cache = cache_result(call)
        cost = call.cost_usd
        if cost is None and usage is not None and isinstance(usage.cost_usd, float | int):
            cost = float(usage.cost_usd)
        if cache != "miss":
            cost = 0.0
        return Title(title=title, model=call.chat_request.model, style=req.style,
                     category=req.category, cached=cache != "miss", cache=cache, usage=usage,
                     cost_usd=cost, id=f"title_{unique_suffix()}",
                     created=int(self._clock()), request_id=call.request_id)

    # -- library API ----------------------------------------------------------------------------
    def _request(self, description: Any, style: Any, max_length: Any, category: Any,
                 examples: Any, model: Any, user: Any, stream: bool) -> TitleRequest:
        if isinstance(examples, tuple):
            examples = list(examples)
        return title_request_from({"description": description, "style": style,
                                   "max_length": max_length, "category": category,
                                   "examples": examples, "model": model, "user": user,
                                   "stream": stream}, max_depth=self.max_depth)

    async def agenerate(self, description: str, *, style: str | None = None,
                        max_length: int | None = None, category: str | None = None,
                        examples: Sequence[str] | None = None, model: str | None = None,
                        cache: dict[str, Any] | None = None, user: str | None = None,
                        identity: Identity = ANONYMOUS) -> Title:
        """A title for `description` (see the module docstring). `cache` is the chat call's
        cache control: `{"mode": "no-cache"}` regenerates (skips the cache, stores the new
        title); `identity` is who asks (team budgets and rate limits apply to it)."""
        req = self._request(description, style, max_length, category, examples, model, user,
                            False)
        call = self.prepare(req, identity, cache=cache)
        return await self.complete(call, req)

    def generate(self, description: str, **kw: Any) -> Title:
        """`agenerate` without an event loop."""
        out: Title = self._run_sync(self.agenerate(description, **kw))
        return out

    def stream_generate(self, description: str, *, style: str | None = None,
                        max_length: int | None = None, category: str | None = None,
                        examples: Sequence[str] | None = None, model: str | None = None,
                        cache: dict[str, Any] | None = None, user: str | None = None,
                        identity: Identity = ANONYMOUS) -> TitleStream:
        """`async for delta in gw.titles.stream_generate(...)`; then `.result` is the `Title`.
        The arguments are checked here, before anything runs."""
        req = self._request(description, style, max_length, category, examples, model, user,
                            True)
        return self.stream(self.prepare(req, identity, cache=cache), req)
