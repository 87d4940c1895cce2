"""`Knowledge`: the one facade the gateway (`gw.rag`), the HTTP routes and the CLI call.

It decides *who may do what to which collection* and leaves the work to the parts below it:
loaders read bytes, a chunker cuts, the `Ingestor` embeds and stores, the `Retriever`
searches, the `ChunkStore` persists. Every method takes the caller's `Identity`:

- a collection belongs to one team (`owner`; `""` for the library's own caller, an admin key
  without a team, or a config collection without `team`). A name resolves to the caller's
  team's own collection, else to one shared with the team (or with `*`); `owner/name` picks a
  shared one of another team explicitly. Admins (unrestricted permissions, or `admin:*`) see
  every collection. Anything else is `CollectionNotFoundError` (404): another team's private
  collection answers exactly as one that does not exist, so its existence does not leak.
- reading (list, search, answers) needs `rag:read`; writing (create, share, ingest, delete)
  needs `rag:write` *and* ownership: a team a collection is shared with reads it, never
  changes it (403, since it can already see the collection).
- collections declared in config (`rag.collections`) are created the first time the store
  is opened, with the configured owner and sharing (config wins over earlier API changes).

Nothing heavy happens at construction: the store opens, the embedder loads and the rag
extra's modules (numpy, usearch, bm25s, pypdf) import on the first call that needs them.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from gatewise.errors import (
    CollectionNotFoundError,
    ConflictError,
    DocumentNotFoundError,
    EmptyDocumentError,
    ForbiddenError,
    InvalidRequestError,
)
from gatewise.pipeline.core import Identity
from gatewise.rag.types import CollectionRecord, DocumentRecord, Filters, Hit, LoadedDocument
from gatewise.security.rbac import is_superuser
from gatewise.types.limits import END

if TYPE_CHECKING:
    from gatewise.config.schema import RagConfig
    from gatewise.embedding.base import AsyncEmbedder, TextEmbedder
    from gatewise.rag.ingest import Ingestor, IngestReport
    from gatewise.rag.loaders import LoadFailure
    from gatewise.rag.search import Retriever
    from gatewise.storage.chunks import ChunkStore

__all__ = ["COLLECTION_NAME", "FILTER_OPERATORS", "Knowledge", "SearchMode", "Upload",
           "check_filters"]

SearchMode = Literal["hybrid", "vector", "bm25"]
READ, WRITE = "rag:read", "rag:write"
# A collection's name: one path segment, so `owner/name` is never ambiguous.
COLLECTION_NAME = rf"^[A-Za-z0-9][A-Za-z0-9_.\-]{{0,127}}{END}"
_NAME = re.compile(COLLECTION_NAME)
_ID = re.compile(r"col_[0-9a-f]{16}\Z")
MAX_DOCUMENT_ID = 512
FILTER_OPERATORS = frozenset({"$in", "$ne", "$gte", "$lte"})
_MAX_FILTER_FIELDS = 32
_MAX_IN = 1000
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True, slots=True)
class Upload:
    """A file as a client sent it, before a loader reads it."""

    data: bytes
    filename: str | None = None
    content_type: str | None = None
    id: str | None = None
    metadata: Mapping[str, Any] | None = None
    # One of `loaders.FORMATS` to force a loader; None: detected (extension, type, content).
    format: str | None = None


def check_name(name: str, param: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequestError(
            "a collection name has 1-128 of A-Z a-z 0-9 _ . - and starts with a letter or "
            "digit", param=param)
    return name


def check_document_id(document_id: str, param: str = "id") -> str:
    if not 0 < len(document_id) <= MAX_DOCUMENT_ID or "\x00" in document_id:
        raise InvalidRequestError(f"a document id has 1 to {MAX_DOCUMENT_ID} characters and "
                                  "no NUL", param=param)
    return document_id


def check_filters(filters: Any, param: str = "filters") -> Filters | None:
    """The metadata filter grammar (`storage.chunks.Filters`), checked before any search so a
    malformed filter is a 400 naming it rather than an empty result or a 500: field → scalar
    (equality) or → an object of `$in` (a list of scalars), `$ne`, `$gte`, `$lte`."""
    if filters is None:
        return None
    if not isinstance(filters, Mapping):
        raise InvalidRequestError("filters must be an object of field → value", param=param)
    if len(filters) > _MAX_FILTER_FIELDS:
        raise InvalidRequestError(f"at most {_MAX_FILTER_FIELDS} filter fields", param=param)
    for field, cond in filters.items():
        where = f"{param}.{field}"
        if not isinstance(field, str) or not 0 < len(field) <= 128 or field.startswith("$"):
            raise InvalidRequestError("a filter field is a metadata key (1-128 characters, "
                                      "not starting with '$')", param=param)
        if isinstance(cond, Mapping):
            if not cond:
                raise InvalidRequestError("an empty filter condition", param=where)
            for op, value in cond.items():
                if op not in FILTER_OPERATORS:
                    raise InvalidRequestError(
                        f"unknown filter operator {str(op)[:40]!r} (known: "
                        f"{', '.join(sorted(FILTER_OPERATORS))})", param=where)
                if op == "$in":
                    if not isinstance(value, list) or len(value) > _MAX_IN \
                            or not all(_scalar(v) for v in value):
                        raise InvalidRequestError(f"$in takes a list of at most {_MAX_IN} "
                                                  "scalars", param=where)
                elif op in ("$gte", "$lte"):
                    if isinstance(value, bool) or not isinstance(value, int | float | str) \
                            or not _scalar(value):
                        raise InvalidRequestError(f"{op} takes a number or a string",
                                                  param=where)
                elif not _scalar(value):
                    raise InvalidRequestError(f"{op} takes a scalar", param=where)
        elif not _scalar(cond):
            raise InvalidRequestError("a filter value is a scalar or an operator object",
                                      param=where)
    return filters


def _scalar(value: Any) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, _SCALARS)


class Knowledge:
    """See the module docstring. `open_store` and `make_embedder` run once, on first use;
    `count` measures chunks in tokens (words when None); `reranker` re-ranks a search that
    asks for it; `dimension` is the embedder's width when known without asking it (else
    one probe learns it)."""

    def __init__(self, config: RagConfig, *, open_store: Callable[[], ChunkStore],
                 make_embedder: Callable[[], AsyncEmbedder],
                 count: Callable[[str], int] | None = None,
                 reranker: Callable[[str, list[Hit]], Awaitable[list[float]]] | None = None,
                 dimension: int | None = None) -> None:
        self.config = config
        self._open_store = open_store
        self._make_embedder = make_embedder
        self._count = count
        self._reranker = reranker
        self._dimension = dimension
        self._store: ChunkStore | None = None
        self._embedder: AsyncEmbedder | None = None
        self._retriever: Retriever | None = None
        self._ingestors: dict[str, Ingestor] = {}
        self._lock = asyncio.Lock()
        self.searcher = _LazySearcher(self)

    # -- lazy parts ---------------------------------------------------------------------------
    async def store(self) -> ChunkStore:
        """The store, opened (and the config's collections created) on first use."""
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    store = self._open_store()
                    try:
                        await self._declare(store)
                    except BaseException:
                        await store.aclose()  # the next call tries again from scratch
                        raise
                    self._store = store
        return self._store

    def embedder(self) -> AsyncEmbedder:
        if self._embedder is None:
            self._embedder = self._make_embedder()
        return self._embedder

    async def embedder_info(self) -> tuple[str, int]:
        """The embedder's name and dimension; an alias's dimension is learnt from one probe."""
        emb = self.embedder()
        if self._dimension is None:
            dim = getattr(emb, "dimension", None)
            if not isinstance(dim, int):
                dim = int((await emb.embed(["dimension probe"])).shape[1])
            self._dimension = dim
        return emb.name, self._dimension

    async def retriever(self) -> Retriever:
        if self._retriever is None:
            embedder = self.embedder()  # first: its runtime must load before the index's
            from gatewise.rag.search import Fusion, Retriever

            f = self.config.fusion
            self._retriever = Retriever(await self.store(), embedder, reranker=self._reranker,
                                        fusion=Fusion(f.rrf_k, f.vector_weight, f.bm25_weight))
        return self._retriever

    async def _ingestor(self, chunker: str) -> Ingestor:
        found = self._ingestors.get(chunker)
        if found is None:
            from gatewise.embedding.base import window_of
            from gatewise.rag.chunkers import make_chunker
            from gatewise.rag.ingest import Ingestor

            emb = self.embedder()
            blocking: TextEmbedder | None = getattr(emb, "embedder", None)
            c = self.config
            # Each chunk within what one vector reads, in the embedder's own tokens.
            cut = make_chunker(chunker, tokens=c.chunk_tokens, overlap=c.chunk_overlap,
                               count=self._count or _words, embedder=blocking,
                               window=window_of(emb))
            found = self._ingestors[chunker] = Ingestor(await self.store(), emb, cut,
                                                        batch=c.embed_batch)
        return found

    async def _declare(self, store: ChunkStore) -> None:
        """The config's collections exist, owned and shared as the config says."""
        if not self.config.collections:
            return
        name, dim = await self.embedder_info()
        for cname, cc in self.config.collections.items():
            owner = cc.team or ""
            shared = tuple(cc.shared_with)
            found = await store.find_collection(owner, cname)
            if found is None:
                await store.put_collection(CollectionRecord(
                    id=_new_id(), name=cname, owner=owner, embedder=name, dimension=dim,
                    created=time.time(), shared_with=shared,
                    chunker=cc.chunker or self.config.chunker, description=cc.description))
            elif found.shared_with != shared or found.description != cc.description:
                await store.put_collection(replace(found, shared_with=shared,
                                                   description=cc.description))

    # -- who sees what (types.Resolver) -------------------------------------------------------
    async def resolve(self, identity: Identity, name: str) -> CollectionRecord:
        """The collection `name` means for this caller, or `CollectionNotFoundError`."""
        _require(identity, READ)
        store = await self.store()
        owner, sep, short = name.rpartition("/")
        if not sep:
            owner, short = "", name
        if not _NAME.match(short) or (sep and owner and not _NAME.match(owner)):
            raise CollectionNotFoundError(f"no collection named {name[:200]!r}",
                                          param="collection")
        team = identity.team or ""
        admin = is_superuser(identity)
        if sep:
            found = await store.find_collection(owner, short)
            if found is not None and (admin or _visible(found, team)):
                return found
        else:
            own = await store.find_collection(team, short) if team or admin else None
            if own is not None:
                return own
            if _ID.match(short):  # a collection's id names it too (ids never change)
                by_id = await store.get_collection(short)
                if by_id is not None and (admin or _visible(by_id, team)):
                    return by_id
            visible = [c for c in await store.list_collections(None if admin else team)
                       if c.name == short and (admin or _visible(c, team))]
            if len(visible) == 1:
                return visible[0]
            if len(visible) > 1:
                owners = ", ".join(sorted(f"{c.owner or '(no team)'}/{c.name}"
                                          for c in visible)[:5])
                raise InvalidRequestError(f"several collections named {short!r} are visible "
                                          f"to this key ({owners}): name one as owner/name",
                                          param="collection")
        raise CollectionNotFoundError(f"no collection named {name[:200]!r}",
                                      param="collection")

    async def writable(self, identity: Identity, name: str) -> CollectionRecord:
        """The collection, if this caller may change it: 404 when it cannot see it, 403 when
        it only reads it (shared with its team)."""
        _require(identity, WRITE)
        found = await self.resolve(identity, name)
        if not is_superuser(identity) and (not identity.team or found.owner != identity.team):
            raise ForbiddenError(f"collection {name!r} is shared with this key's team for "
                                 "reading; only its owner team changes it")
        return found

    # -- collections --------------------------------------------------------------------------
    async def create_collection(self, identity: Identity, name: str, *,
                                shared_with: Sequence[str] = (), chunker: str | None = None,
                                description: str = "",
                                metadata: Mapping[str, Any] | None = None,
                                team: str | None = None) -> CollectionRecord:
        """A new collection owned by the caller's team (an admin may name another `team`);
        409 when that team already has one of this name."""
        _require(identity, WRITE)
        check_name(name)
        owner = identity.team or ""
        if team is not None and team != owner:
            if not is_superuser(identity):
                raise ForbiddenError("this key may only create collections of its own team")
            owner = team
        if not owner and not is_superuser(identity):
            raise ForbiddenError("this key belongs to no team, so it owns no collections")
        chunker = chunker or self.config.chunker
        _check_chunker(chunker)
        store = await self.store()
        if await store.find_collection(owner, name) is not None:
            raise ConflictError(f"this team already has a collection named {name!r}",
                                param="name")
        emb_name, dim = await self.embedder_info()
        record = CollectionRecord(
            id=_new_id(), name=name, owner=owner, embedder=emb_name, dimension=dim,
            created=time.time(), shared_with=tuple(dict.fromkeys(shared_with)),
            chunker=chunker, description=description, metadata=dict(metadata or {}))
        await store.put_collection(record)
        return record

    async def list_collections(self, identity: Identity) -> list[CollectionRecord]:
        _require(identity, READ)
        store = await self.store()
        if is_superuser(identity):
            return await store.list_collections(None)
        team = identity.team or ""
        return [c for c in await store.list_collections(team) if _visible(c, team)]

    async def get_collection(self, identity: Identity, name: str) -> CollectionRecord:
        return await self.resolve(identity, name)

    async def share(self, identity: Identity, name: str, *,
                    shared_with: Sequence[str] | None = None, description: str | None = None,
                    metadata: Mapping[str, Any] | None = None) -> CollectionRecord:
        """Changes who else reads the collection (and its description, metadata)."""
        found = await self.writable(identity, name)
        updated = replace(
            found,
            shared_with=found.shared_with if shared_with is None
            else tuple(dict.fromkeys(shared_with)),
            description=found.description if description is None else description,
            metadata=found.metadata if metadata is None else dict(metadata))
        await (await self.store()).put_collection(updated)
        return updated

    async def delete_collection(self, identity: Identity, name: str) -> int:
        """Removes the collection with every document and chunk; returns chunks removed."""
        found = await self.writable(identity, name)
        removed = await (await self.store()).delete_collection(found.id)
        if self._retriever is not None:
            self._retriever.forget(found.id)
        return removed

    # -- documents ----------------------------------------------------------------------------
    async def ingest(self, identity: Identity, name: str,
                     documents: Sequence[LoadedDocument | LoadFailure | Upload] | Upload, *,
                     progress: Callable[[Any], None] | None = None) -> IngestReport:
        """Loads every upload first (so a bad one refuses the whole request with nothing
        stored), then ingests: an id already stored is replaced, an unchanged one skipped."""
        found = await self.writable(identity, name)
        docs = await self.load(documents)
        ingestor = await self._ingestor(found.chunker)
        report = await ingestor.ingest(found, docs, progress=progress)
        await self._caught_up(found)
        return report

    async def load(self, documents: Sequence[LoadedDocument | LoadFailure | Upload] | Upload
                   ) -> list[LoadedDocument | LoadFailure]:
        """Uploads read by their loaders (off the event loop: a PDF takes a while); loaded
        documents and load failures (`loaders.load_paths`) pass as they are."""
        items: Sequence[Any] = [documents] if isinstance(documents, Upload) else documents
        if not items:
            raise EmptyDocumentError("no documents given", param="documents")
        out: list[Any] = []
        for item in items:
            if not isinstance(item, Upload):  # loaded already (or a `LoadFailure` to report)
                out.append(item)
                continue
            if item.id is not None:
                check_document_id(item.id)
            out.append(await asyncio.to_thread(_load, item))
        return out

    async def list_documents(self, identity: Identity, name: str, *, after: str = "",
                             limit: int = 100) -> list[DocumentRecord]:
        found = await self.resolve(identity, name)
        return await (await self.store()).list_documents(found.id, after=after, limit=limit)

    async def get_document(self, identity: Identity, name: str,
                           document_id: str) -> DocumentRecord:
        found = await self.resolve(identity, name)
        doc = await (await self.store()).get_document(found.id, document_id)
        if doc is None:
            raise DocumentNotFoundError(f"no document {document_id[:200]!r} in {name!r}",
                                        param="document_id")
        return doc

    async def delete_document(self, identity: Identity, name: str, document_id: str) -> int:
        """Chunks removed; 404 when the collection has no such document."""
        found = await self.writable(identity, name)
        store = await self.store()
        removed = await store.delete_document(found.id, document_id)
        if not removed and await store.get_document(found.id, document_id) is None:
            raise DocumentNotFoundError(f"no document {document_id[:200]!r} in {name!r}",
                                        param="document_id")
        await self._caught_up(found)
        return removed

    async def _caught_up(self, collection: CollectionRecord) -> None:
        """After a write, this process's index takes it in at once (read-your-writes); other
        replicas see it within the retriever's `refresh_s`."""
        if self._retriever is not None:
            await self._retriever.index(collection).refresh(await self.store(), collection.id,
                                                            force=True)

    # -- search -------------------------------------------------------------------------------
    async def search(self, identity: Identity, name: str, query: str, *, k: int | None = None,
                     filters: Filters | None = None, mmr: float | None = None,
                     rerank: bool = False, mode: SearchMode = "hybrid") -> list[Hit]:
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequestError("the query is empty", param="query")
        k = self.config.default_k if k is None else k
        if not 1 <= k <= 100:
            raise InvalidRequestError("k is from 1 to 100", param="k")
        if mmr is not None and not 0 <= mmr <= 1:
            raise InvalidRequestError("mmr is from 0 (diversity) to 1 (relevance)", param="mmr")
        if mode not in ("hybrid", "vector", "bm25"):
            raise InvalidRequestError("mode is hybrid, vector or bm25", param="mode")
        check_filters(filters)
        found = await self.resolve(identity, name)
        retriever = await self.retriever()
        return await retriever.search(found, query, k=k, filters=filters, mmr=mmr,
                                      rerank=rerank, mode=mode)

    async def aclose(self) -> None:
        """Closes what was opened (nothing, when RAG was never used)."""
        emb, self._embedder = self._embedder, None
        store, self._store = self._store, None
        self._retriever = None
        self._ingestors.clear()
        if emb is not None:
            await emb.aclose()
        if store is not None:
            await store.aclose()


class _LazySearcher:
    """`types.Searcher` for the answer stage: the retriever, built on the first search."""

    def __init__(self, knowledge: Knowledge) -> None:
        self._knowledge = knowledge

    async def search(self, collection: CollectionRecord, query: str, *, k: int = 8,
                     filters: Filters | None = None, mmr: float | None = None,
                     rerank: bool = False) -> list[Hit]:
        check_filters(filters, "metadata.rag.filters")
        retriever = await self._knowledge.retriever()
        return await retriever.search(collection, query, k=k, filters=filters, mmr=mmr,
                                      rerank=rerank)


def _load(upload: Upload) -> LoadedDocument:
    from gatewise.rag.loaders import load_bytes

    return load_bytes(upload.data, filename=upload.filename, content_type=upload.content_type,
                      document_id=upload.id, metadata=upload.metadata, format=upload.format)


def _check_chunker(name: str) -> None:
    if name not in ("fixed", "sentence", "recursive", "code", "semantic"):
        raise InvalidRequestError("chunker is fixed, sentence, recursive, code or semantic",
                                  param="chunker")


def _require(identity: Identity, permission: str) -> None:
    if not identity.can(permission):
        raise ForbiddenError(f"permission {permission!r} is required")


def _visible(collection: CollectionRecord, team: str) -> bool:
    """A teamless key that is not an admin sees only what is shared with every team."""
    if "*" in collection.shared_with:
        return True
    return bool(team) and (collection.owner == team or team in collection.shared_with)


def _words(text: str) -> int:
    return len(text.split())


def _new_id() -> str:
    return f"col_{uuid.uuid4().hex[:16]}"  # `_ID`
