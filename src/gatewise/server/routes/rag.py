"""`/v1/rag/collections`: knowledge-base collections, their documents and search, over HTTP.

```
GET    /v1/rag/collections                         rag:read   the collections the key sees
POST   /v1/rag/collections                         rag:write  create (409: the team has it)
GET    /v1/rag/collections/{name}                  rag:read
PATCH  /v1/rag/collections/{name}                  rag:write  sharing, description, metadata
DELETE /v1/rag/collections/{name}                  rag:write  with every document and chunk
GET    /v1/rag/collections/{name}/documents        rag:read   by id, `?after=&limit=` paging
POST   /v1/rag/collections/{name}/documents        rag:write  ingest (see below)
GET    /v1/rag/collections/{name}/documents/{id}   rag:read
DELETE /v1/rag/collections/{name}/documents/{id}   rag:write
POST   /v1/rag/collections/{name}/search           rag:read   hits with their scores
```

Every path parameter is percent-decoded segment by segment, so `team-a%2Fdocs` names team
`team-a`'s shared collection `docs`, and a document id may hold `/` (it usually is a path:
`docs/install.md`), encoded or not. Who sees and changes what is `gatewise.rag.service`'s
rule; another team's private collection is a 404 like one that does not exist.

A document arrives in one of three ways, told apart by `Content-Type`: JSON (`{text, id?,
metadata?, format?}` or a list of them), `multipart/form-data` (a `file` part, optional
`id`, `metadata` (JSON) and `format` fields), or the raw file with its own type and
`?filename=&id=&format=`. The body is bounded by `rag.max_upload_bytes` (a declared length
over it is refused before a byte is read: 413). Every document is loaded before any is
stored, so an empty (400), unsupported or malformed (415) one leaves the collection as it was.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import msgspec

from gatewise.errors import (
    ForbiddenError,
    IngestionFailedError,
    InvalidRequestError,
    RequestTooLargeError,
    public_text,
)
from gatewise.rag.inputs import (
    CollectionCreate,
    CollectionUpdate,
    DocumentIn,
    DocumentsQuery,
    SearchIn,
    UploadQuery,
)
from gatewise.rag.service import Upload, check_document_id, check_name
from gatewise.rag.types import CollectionRecord, DocumentRecord, Hit
from gatewise.security.inputs import decode_input, parse_query
from gatewise.server.context import RequestContext
from gatewise.server.http import header, read_body, respond
from gatewise.server.routes.admin.common import query_params

if TYPE_CHECKING:
    from gatewise.rag.ingest import IngestReport

__all__ = ["PREFIXES", "match_rag"]

Route = Callable[[RequestContext], Awaitable[None]]
PREFIXES = ("/v1/rag/collections", "/rag/collections")
READ, WRITE = "rag:read", "rag:write"
_encode = msgspec.json.Encoder().encode
_MAX_PARTS = 16


def match_rag(method: str, scope: dict[str, Any] | Any) -> Route | list[str] | None:
    """The route for this request; the methods the path takes when `method` is not one of
    them (a 405 with `Allow`); None when the path is not one of ours (404)."""
    segments = _segments(scope)
    if segments is None:
        return None
    table = _table(segments)
    if table is None:
        return None
    found = table.get(method)
    if found is None:
        return sorted(table)
    permission, handler = found

    async def route(ctx: RequestContext) -> None:
        # The permission first: a caller without it learns nothing from validation.
        if not ctx.identity.can(permission):
            raise ForbiddenError(f"permission {permission!r} is required")
        await handler(ctx)

    return route


def _segments(scope: Any) -> list[str] | None:
    """The path after the prefix, split and percent-decoded segment by segment."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else scope["path"]
    path = path.split("?", 1)[0]
    for prefix in PREFIXES:
        if path == prefix or path == prefix + "/":
            return []
        if path.startswith(prefix + "/"):
            return [unquote(s, errors="replace") for s in path[len(prefix) + 1:].split("/")]
    return None


def _table(seg: list[str]) -> dict[str, tuple[str, Route]] | None:
    """The methods a path takes: the permission each needs and its handler."""
    if not seg:
        return {"GET": (READ, _list_collections), "POST": (WRITE, _create_collection)}
    name = seg[0]
    if not name:
        return None
    if len(seg) == 1:
        return {"GET": (READ, lambda ctx: _get_collection(ctx, name)),
                "PATCH": (WRITE, lambda ctx: _update_collection(ctx, name)),
                "DELETE": (WRITE, lambda ctx: _delete_collection(ctx, name))}
    if seg[1] == "search" and len(seg) == 2:
        return {"POST": (READ, lambda ctx: _search(ctx, name))}
    if seg[1] != "documents":
        return None
    if len(seg) == 2 or (len(seg) == 3 and not seg[2]):
        return {"GET": (READ, lambda ctx: _list_documents(ctx, name)),
                "POST": (WRITE, lambda ctx: _ingest(ctx, name))}
    doc = "/".join(seg[2:])
    return {"GET": (READ, lambda ctx: _get_document(ctx, name, doc)),
            "DELETE": (WRITE, lambda ctx: _delete_document(ctx, name, doc))}


# -- views ------------------------------------------------------------------------------------
def collection_view(c: CollectionRecord) -> dict[str, Any]:
    return {"id": c.id, "object": "rag.collection", "name": c.name, "owner": c.owner or None,
            "shared_with": list(c.shared_with), "embedder": c.embedder,
            "dimension": c.dimension, "chunker": c.chunker, "description": c.description,
            "metadata": dict(c.metadata), "created": c.created}


def document_view(d: DocumentRecord, collection: str) -> dict[str, Any]:
    return {"id": d.id, "object": "rag.document", "collection": collection,
            "chunks": d.chunks, "tokens": d.tokens, "digest": d.digest, "updated": d.updated,
            "metadata": dict(d.metadata)}


def hit_view(h: Hit) -> dict[str, Any]:
    c = h.chunk
    return {"object": "rag.hit", "rank": h.rank, "score": h.score, "scores": dict(h.scores),
            "chunk_id": c.id, "document_id": c.document_id, "ordinal": c.ordinal,
            "text": c.text, "tokens": c.tokens, "metadata": dict(c.metadata)}


def report_view(report: IngestReport, collection: str) -> dict[str, Any]:
    """The report, each failure's reason fit for a client: it may quote the embedding
    upstream's error, which may name internal hosts or echo a credential."""
    data = report.to_dict()
    data["failed"] = [{"id": f.id, "reason": public_text(f.reason or "")}
                      for f in report.failed]
    return {"object": "rag.ingestion", "collection": collection, **data}


async def _send(ctx: RequestContext, data: Any, status: int = 200) -> None:
    await respond(ctx.send, status, _encode(data), [(b"x-request-id", ctx.request_id.encode())])


# -- collections ------------------------------------------------------------------------------
async def _list_collections(ctx: RequestContext) -> None:
    found = await ctx.gateway.rag.list_collections(ctx.identity)
    await _send(ctx, {"object": "list", "data": [collection_view(c) for c in found]})


async def _create_collection(ctx: RequestContext) -> None:
    body = decode_input(CollectionCreate, await ctx.read_body())
    made = await ctx.gateway.rag.create_collection(
        ctx.identity, body.name, shared_with=body.shared_with, chunker=body.chunker,
        description=body.description, metadata=body.metadata, team=body.team)
    await _send(ctx, collection_view(made), 201)


async def _get_collection(ctx: RequestContext, name: str) -> None:
    found = await ctx.gateway.rag.get_collection(ctx.identity, _name(name))
    await _send(ctx, collection_view(found))


async def _update_collection(ctx: RequestContext, name: str) -> None:
    body = decode_input(CollectionUpdate, await ctx.read_body())
    updated = await ctx.gateway.rag.share(ctx.identity, _name(name),
                                          shared_with=body.shared_with,
                                          description=body.description, metadata=body.metadata)
    await _send(ctx, collection_view(updated))


async def _delete_collection(ctx: RequestContext, name: str) -> None:
    removed = await ctx.gateway.rag.delete_collection(ctx.identity, _name(name))
    await _send(ctx, {"id": name, "object": "rag.collection.deleted", "deleted": True,
                      "chunks": removed})


# -- documents --------------------------------------------------------------------------------
async def _list_documents(ctx: RequestContext, name: str) -> None:
    q = parse_query(DocumentsQuery, query_params(ctx))
    # One more than asked says whether another page follows.
    found = await ctx.gateway.rag.list_documents(ctx.identity, _name(name), after=q.after,
                                                 limit=q.limit + 1)
    page = found[:q.limit]
    await _send(ctx, {"object": "list", "data": [document_view(d, name) for d in page],
                      "has_more": len(found) > q.limit,
                      "last_id": page[-1].id if page else None})


async def _get_document(ctx: RequestContext, name: str, document_id: str) -> None:
    doc = await ctx.gateway.rag.get_document(ctx.identity, _name(name),
                                             check_document_id(document_id, "document_id"))
    await _send(ctx, document_view(doc, name))


async def _delete_document(ctx: RequestContext, name: str, document_id: str) -> None:
    removed = await ctx.gateway.rag.delete_document(
        ctx.identity, _name(name), check_document_id(document_id, "document_id"))
    await _send(ctx, {"id": document_id, "object": "rag.document.deleted", "deleted": True,
                      "chunks": removed})


async def _ingest(ctx: RequestContext, name: str) -> None:
    rag = ctx.gateway.rag
    # The collection first: an unknown one (404), or one this key only reads (403), is
    # refused before a large body is read.
    await rag.writable(ctx.identity, _name(name))
    limit = rag.config.max_upload_bytes
    ctype = (header(ctx.scope, b"content-type") or b"").decode("latin-1")
    query = query_params(ctx)
    try:
        body = await read_body(ctx.scope, ctx.receive, limit)
    except RequestTooLargeError:
        raise RequestTooLargeError(f"the upload exceeds rag.max_upload_bytes ({limit} bytes)",
                                   param="body") from None
    uploads = _uploads(body, ctype, query)
    report = await rag.ingest(ctx.identity, name, uploads)
    failed = report.failed
    if failed and len(failed) == len(report.documents):
        first = failed[0]
        raise IngestionFailedError(f"no document was stored ({len(failed)} failed); "
                                   f"{public_text(first.id, 200)!r}: "
                                   f"{public_text(first.reason or 'failed')}")
    await _send(ctx, report_view(report, name))


def _uploads(body: bytes, ctype: str, query: dict[str, str]) -> list[Upload]:
    # Checked whatever the body: a bad parameter is a 400 even where it would not be used.
    q = parse_query(UploadQuery, query)
    kind = ctype.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        return _json_documents(body)
    if kind == "multipart/form-data":
        return [_multipart(body, ctype)]
    return [Upload(body, filename=q.filename, content_type=ctype or None, id=q.id,
                   format=q.format)]


def _json_documents(body: bytes) -> list[Upload]:
    """`{text, id?, metadata?, format?}` or a list of them (at most 1,000)."""
    items: Any
    try:
        items = msgspec.json.decode(body or b"null")
    except msgspec.DecodeError:
        raise InvalidRequestError("the body is not valid JSON") from None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise InvalidRequestError("send a document {text, id?, metadata?, format?} or a "
                                  "non-empty list of them", param="documents")
    if len(items) > 1000:
        raise InvalidRequestError("at most 1000 documents per request", param="documents")
    out: list[Upload] = []
    for i, item in enumerate(items):
        try:
            doc = msgspec.convert(item, DocumentIn)
        except msgspec.ValidationError as exc:
            raise InvalidRequestError(f"document {i}: {exc}", param=f"documents[{i}]") from None
        source = doc.metadata.get("source")
        out.append(Upload(doc.text.encode(),
                          filename=source if isinstance(source, str) else None, id=doc.id,
                          metadata=doc.metadata, format=doc.format or (
                              None if isinstance(source, str) else "text")))
    return out


def _multipart(body: bytes, ctype: str) -> Upload:
    """The `file` part (and `id`, `metadata`, `format` fields) of a form upload."""
    boundary = _param(ctype, "boundary")
    if not boundary:
        raise InvalidRequestError("multipart/form-data needs a boundary", param="content-type")
    fields: dict[str, tuple[bytes, str | None, str | None]] = {}
    delimiter = b"--" + boundary.encode("latin-1")
    parts = body.split(delimiter)
    if len(parts) < 3:
        raise InvalidRequestError("a malformed multipart body", param="body")
    for part in parts[1:-1][:_MAX_PARTS]:
        part = part.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            raise InvalidRequestError("a malformed multipart part", param="body")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        field = _param(disposition, "name")
        if field:
            fields[field] = (content, _param(disposition, "filename"),
                             headers.get("content-type"))
    if "file" not in fields:
        raise InvalidRequestError("the form has no 'file' part", param="file")
    data, filename, part_type = fields["file"]
    metadata: dict[str, Any] | None = None
    if "metadata" in fields:
        try:
            metadata = json.loads(fields["metadata"][0])
        except ValueError:
            metadata = None
        if not isinstance(metadata, dict):
            raise InvalidRequestError("metadata is a JSON object", param="metadata")
    q = parse_query(UploadQuery, {k: fields[k][0].decode("utf-8", "replace")
                                  for k in ("id", "format") if k in fields})
    return Upload(data, filename=filename, content_type=part_type, id=q.id,
                  metadata=metadata, format=q.format)


def _param(value: str, name: str) -> str | None:
    """A `name=value` parameter of a header (`boundary`, `name`, `filename`), unquoted."""
    for piece in value.split(";")[1:]:
        key, sep, raw = piece.strip().partition("=")
        if sep and key.strip().lower() == name:
            raw = raw.strip()
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1].replace('\\"', '"')
            return raw
    return None


# -- search -----------------------------------------------------------------------------------
async def _search(ctx: RequestContext, name: str) -> None:
    body = decode_input(SearchIn, await ctx.read_body())
    hits = await ctx.gateway.rag.search(ctx.identity, _name(name), body.query, k=body.k,
                                        filters=body.filter_map(), mmr=body.mmr,
                                        rerank=body.rerank, mode=body.mode)
    await _send(ctx, {"object": "list", "data": [hit_view(h) for h in hits]})


def _name(name: str) -> str:
    """A collection in a path: `name`, or `owner/name` (the slash percent-encoded)."""
    owner, sep, short = name.rpartition("/")
    check_name(short, "collection")
    if sep and owner:
        check_name(owner, "collection")
    return name
