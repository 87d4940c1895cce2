"""The semantic cache: on an exact miss, a stored answer to a request that means the same.

What is compared: the text of the request's last turn, when it is a user turn of text (an
image, a tool result or an assistant prefill is never matched by meaning). Everything else
the model sees (system prompts, earlier turns, tools, tool_choice, response_format and every
generation parameter) must be identical: it is hashed into a *context fingerprint*, and only
entries of the same fingerprint are candidates. A candidate must then reach the alias's cosine
threshold and pass the false-hit guard (`guard.mismatch`: numbers, negations, named targets,
opposites, small word edits); the first that does, and whose exact entry still exists, is
served as `x-gatewise-cache: semantic-hit` with `x-gatewise-cache-similarity`.

Where vectors live: an in-process `VectorIndex` per (tenant scope, alias, embedder), bounded
by `max_entries_per_scope`. With a shared store (Redis, PostgreSQL) each vector is also a
record in it, so replicas share them:

- `<scope prefix>sem:<ns>:r:<id>`: the record (msgpack: entry key, text, fingerprint, float16
  vector, expiry), with the entry's TTL;
- `<scope prefix>sem:<ns>:b:<minute>`: the set of record ids added in that minute;
- `<scope prefix>sem:<ns>:buckets`: the set of minutes that have records.

A replica reads them lazily: on its first lookup in a namespace, then at most every
`refresh_s`, it lists the minutes, reads the ids of minutes it has not finished, and fetches
only records it has not seen (a few hundred inline; a backlog is read in the background);
minutes older than the last two are final and never listed again. Keys start with the
scope's exact-cache prefix, so invalidating a scope by prefix drops its vectors too. An
embedder or store failure is a miss, never an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import numpy.typing as npt

from gatewise.cache.guard import Features, features, mismatch
from gatewise.cache.key import canonical_request, scope_prefix
from gatewise.cache.store import Entry, ResponseCache
from gatewise.cache.vectors import VectorIndex
from gatewise.config.schema import CacheAliasConfig, SemanticCacheConfig
from gatewise.pipeline.background import BackgroundTasks
from gatewise.storage.base import KVStore
from gatewise.types.messages import TextPart, UserMessage
from gatewise.types.requests import ChatRequest

if TYPE_CHECKING:
    from gatewise.embedding import AsyncEmbedder

log = logging.getLogger("gatewise.cache")

BUCKET_S = 60.0
_FETCH_BATCH = 64
# A lookup reads at most this many new records itself; a replica catching up on more (a cold
# start beside a full index) goes on in the background, and lookups use what has arrived.
_FETCH_INLINE = 512
_FETCH_PER_ROUND = 20_000


class _Record(msgspec.Struct, array_like=True):
    key: str
    text: str
    fingerprint: int
    vector: bytes  # float16
    expires: float


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Record).decode


def query_text(req: ChatRequest) -> str | None:
    """The text compared by meaning: the last turn, if it is a user turn of text only."""
    last = req.messages[-1]
    if not isinstance(last, UserMessage):
        return None
    content = last.content
    if isinstance(content, str):
        text = content
    elif all(isinstance(p, TextPart) for p in content):
        text = "\n".join(p.text for p in content if isinstance(p, TextPart))
    else:
        return None
    text = text.strip()
    return text or None


_GREETING = re.compile(
    r"^\s*(?:(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening))(?: there)?\b[\s,!.:;-]*)?"
    r"(?:(?:please|pls|quick question)\b[\s,:;-]*)?", re.IGNORECASE)
_THANKS = re.compile(
    r"[\s,.;:!?-]*(?:(?:many )?(?:thanks|thank you|thx|cheers)"
    r"(?: (?:so much|a lot|in advance))?|please)?[\s.!?]*$", re.IGNORECASE)


def embedding_text(text: str) -> str:
    """What is embedded: the text without an opening greeting, a closing thanks or trailing
    punctuation ("Hi, how do I reset my password? Thanks!" = "how do I reset my password").
    A small sentence embedding moves a lot for such words on a short question, yet they
    never change the answer (the guard ignores them too); so a retyped repeat lands on its
    original instead of somewhere near it. Case is left: the model is uncased."""
    core = _THANKS.sub("", _GREETING.sub("", text, count=1), count=1)
    return core or text


def context_fingerprint(req: ChatRequest) -> int:
    """Everything but the compared text: earlier turns, tools, format and parameters."""
    context = msgspec.structs.replace(req, messages=req.messages[:-1])
    digest = hashlib.blake2b(canonical_request(context), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(slots=True)
class SemanticQuery:
    namespace: str
    text: str
    fingerprint: int
    features: Features
    threshold: float
    vector: npt.NDArray[np.float32] | None = None


@dataclass(frozen=True, slots=True)
class SemanticHit:
    key: str
    entry: Entry
    similarity: float


@dataclass(slots=True)
class _Namespace:
    index: VectorIndex | None = None
    seen: dict[str, None] = field(default_factory=dict)  # record ids read, oldest first
    sealed: set[str] = field(default_factory=set)
    refreshed: float = float("-inf")
    refreshing: bool = False


class _EmbedBatches:
    """Texts of concurrent lookups embedded as one batch: while one batch runs on the
    embedder's thread, texts that arrive wait for it and go together in the next. One short
    text per model run is what costs most per lookup under load (every run pays the model's
    fixed overhead); at concurrency 1 each batch is one text, as before."""

    def __init__(self, embedder: AsyncEmbedder, tasks: BackgroundTasks,
                 max_batch: int = 32) -> None:
        self._embedder = embedder
        self._tasks = tasks
        self._max_batch = max_batch
        self._pending: list[tuple[str, asyncio.Future[npt.NDArray[np.float32]]]] = []
        self._running = False

    async def embed(self, text: str) -> npt.NDArray[np.float32]:
        future: asyncio.Future[npt.NDArray[np.float32]] = \
            asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if not self._running:
            self._running = True
            self._tasks.spawn(self._run())
        return await future

    async def _run(self) -> None:
        batch: list[tuple[str, asyncio.Future[npt.NDArray[np.float32]]]] = []
        try:
            while self._pending:
                batch = self._pending[:self._max_batch]
                del self._pending[:len(batch)]
                try:
                    vectors = await self._embedder.embed([text for text, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for i, (_, future) in enumerate(batch):
                    if not future.done():
                        future.set_result(vectors[i])
        finally:
            self._running = False
            for _, future in [*batch, *self._pending]:  # only when cancelled at shutdown
                if not future.done():
                    future.cancel()
            self._pending.clear()

    async def aclose(self) -> None:
        await self._tasks.drain()


class SemanticCache:
    """`store`: the shared store that replicas read vectors from (None: this process only)."""

    def __init__(self, config: SemanticCacheConfig, aliases: Mapping[str, CacheAliasConfig],
                 embedder: AsyncEmbedder, *, store: KVStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.embedder = embedder
        self.store = store
        self._clock = clock
        self._aliases = {a: (config.enabled if o.semantic is None else o.semantic,
                             config.threshold if o.semantic_threshold is None
                             else o.semantic_threshold)
                         for a, o in aliases.items()}
        self._spaces: dict[str, _Namespace] = {}
        self._background = BackgroundTasks("semantic cache refresh")
        self._batches = _EmbedBatches(embedder, BackgroundTasks("semantic cache embedding"))

    def enabled_for(self, alias: str) -> bool:
        return self._aliases.get(alias, (self.config.enabled, 0.0))[0]

    def query(self, scope: str, alias: str, req: ChatRequest) -> SemanticQuery | None:
        """What a lookup and a later store compare (None: this request is not matched by
        meaning). Cheap: nothing is embedded yet."""
        enabled, threshold = self._aliases.get(alias, (self.config.enabled,
                                                       self.config.threshold))
        if not enabled:
            return None
        text = query_text(req)
        if text is None:
            return None
        h = hashlib.blake2b(digest_size=8)
        for part in (scope, alias, self.embedder.name):
            h.update(part.encode())
            h.update(b"\x00")
        namespace = f"{scope_prefix(scope)}sem:{h.hexdigest()}"
        return SemanticQuery(namespace, text, context_fingerprint(req), features(text),
                             threshold)

    async def _embed(self, q: SemanticQuery) -> npt.NDArray[np.float32] | None:
        if q.vector is None:
            try:
                q.vector = await self._batches.embed(embedding_text(q.text))
            except Exception:
                log.warning("semantic cache: embedding failed", exc_info=True)
                return None
        return q.vector

    async def lookup(self, q: SemanticQuery, cache: ResponseCache) -> SemanticHit | None:
        vector = await self._embed(q)
        if vector is None:
            return None
        space = self._spaces.get(q.namespace)
        if space is None:
            space = self._spaces[q.namespace] = _Namespace()
        await self._refresh(q.namespace, space)
        if space.index is None:
            return None
        for candidate in space.index.search(vector, q.fingerprint, self._clock(), q.threshold):
            if mismatch(q.features, candidate.features) is not None:
                continue
            entry = await cache.get(candidate.key)
            if entry is None:  # expired, evicted or invalidated since
                space.index.discard(candidate.key)
                continue
            return SemanticHit(candidate.key, entry, candidate.similarity)
        return None

    async def remember(self, q: SemanticQuery, key: str, ttl: float) -> None:
        """Indexes a stored entry (and shares its vector through the store)."""
        vector = await self._embed(q)
        if vector is None:
            return
        space = self._spaces.get(q.namespace)
        if space is None:
            space = self._spaces[q.namespace] = _Namespace()
        now = self._clock()
        expires = now + ttl
        self._index(space, vector.shape[0]).add(key, vector, q.fingerprint, expires, q.features)
        if self.store is None:
            return
        rid = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
        self._saw(space, rid)
        bucket = str(int(now // BUCKET_S))
        record = _Record(key, q.text, q.fingerprint, vector.astype(np.float16).tobytes(),
                         expires)
        try:
            await self.store.set(f"{q.namespace}:r:{rid}", _encode(record), ttl)
            await self.store.add_members(f"{q.namespace}:b:{bucket}", [rid], ttl)
            await self.store.add_members(f"{q.namespace}:buckets", [bucket], ttl)
        except Exception:
            log.warning("semantic cache: vector write failed", exc_info=True)

    def _saw(self, space: _Namespace, rid: str) -> None:
        """Remembers a record id as read, forgetting the oldest beyond twice the index size
        (their vectors have left the ring by then)."""
        space.seen[rid] = None
        if len(space.seen) > 2 * self.config.max_entries_per_scope:
            del space.seen[next(iter(space.seen))]

    def _index(self, space: _Namespace, dimension: int) -> VectorIndex:
        if space.index is None or space.index.dimension != dimension:
            space.index = VectorIndex(dimension, self.config.max_entries_per_scope)
        return space.index

    async def _refresh(self, namespace: str, space: _Namespace) -> None:
        store = self.store
        now = self._clock()
        if store is None or space.refreshing or now - space.refreshed < self.config.refresh_s:
            return
        space.refreshing = True
        complete = True
        try:
            complete = await self._read_new(store, namespace, space, now, _FETCH_INLINE)
            space.refreshed = now
        except Exception:
            log.warning("semantic cache: vector refresh failed", exc_info=True)
        finally:
            space.refreshing = not complete
        if not complete:
            self._background.spawn(self._catch_up(store, namespace, space))

    async def _catch_up(self, store: KVStore, namespace: str, space: _Namespace) -> None:
        try:
            while not await self._read_new(store, namespace, space, self._clock(),
                                           _FETCH_PER_ROUND):
                pass
        finally:
            space.refreshing = False

    async def _read_new(self, store: KVStore, namespace: str, space: _Namespace,
                        now: float, budget: int) -> bool:
        """Reads up to `budget` unseen records; True when nothing was left unread."""
        current = int(now // BUCKET_S)
        for bucket in sorted(await store.members(f"{namespace}:buckets"), key=int):
            if bucket in space.sealed:
                continue
            ids = [i for i in await store.members(f"{namespace}:b:{bucket}")
                   if i not in space.seen]
            ids = ids[:budget]
            budget -= len(ids)
            for start in range(0, len(ids), _FETCH_BATCH):
                chunk = ids[start:start + _FETCH_BATCH]
                raws = await asyncio.gather(*(store.get(f"{namespace}:r:{i}") for i in chunk))
                for rid, raw in zip(chunk, raws, strict=True):
                    self._saw(space, rid)
                    if raw is None:
                        continue
                    rec = _decode(raw)
                    if rec.expires <= now:
                        continue
                    vec = np.frombuffer(rec.vector, dtype=np.float16).astype(np.float32)
                    self._index(space, vec.shape[0]).add(rec.key, vec, rec.fingerprint,
                                                         rec.expires, features(rec.text))
            if budget <= 0:
                return False
            if int(bucket) < current - 1:
                space.sealed.add(bucket)
        return True

    async def aclose(self) -> None:
        await self._background.drain()
        await self._batches.aclose()
        await self.embedder.aclose()
