"""The OpenAPI description of `/v1/rag/collections` (`routes/rag.py`).

Request bodies and query strings are generated from the types the routes decode them with
(`gatewise.rag.inputs`), so the document admits exactly what the server accepts; every status
a route can answer is listed (415 for a document no loader reads, 413 for one over
`rag.max_upload_bytes`, 409 for a name the team already has).
"""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise.rag.inputs import (
    CollectionCreate,
    CollectionUpdate,
    DocumentIn,
    DocumentsQuery,
    SearchIn,
    UploadQuery,
)
from gatewise.rag.service import COLLECTION_NAME, MAX_DOCUMENT_ID

_REF = "#/components/schemas/{name}"
_STR = {"type": "string"}
_META = {"type": "object", "description": "Any JSON fields"}
_COLLECTION_PROPS: dict[str, Any] = {
    "id": _STR, "object": {"const": "rag.collection"}, "name": _STR,
    "owner": {"type": ["string", "null"], "description": "The owner team (null: no team)"},
    "shared_with": {"type": "array", "items": _STR,
                    "description": "Teams that may read it (* for every team)"},
    "embedder": {"type": "string", "description": "The model its vectors came from"},
    "dimension": {"type": "integer", "minimum": 0}, "chunker": _STR, "description": _STR,
    "metadata": _META, "created": {"type": "number"},
}
_DOCUMENT_PROPS: dict[str, Any] = {
    "id": _STR, "object": {"const": "rag.document"}, "collection": _STR,
    "chunks": {"type": "integer", "minimum": 0}, "tokens": {"type": "integer", "minimum": 0},
    "digest": {"type": "string", "description": "sha256 of its text and chunking settings"},
    "updated": {"type": "number"}, "metadata": _META,
}
_HIT_PROPS: dict[str, Any] = {
    "object": {"const": "rag.hit"}, "rank": {"type": "integer", "minimum": 1},
    "score": {"type": "number", "description": "What ranked it (fused, or the re-ranker's)"},
    "scores": {"type": "object", "additionalProperties": {"type": "number"},
               "description": "Each stage's own score: bm25, vector, rrf, rerank, mmr"},
    "chunk_id": _STR, "document_id": _STR, "ordinal": {"type": "integer", "minimum": 0},
    "text": _STR, "tokens": {"type": "integer", "minimum": 0},
    "metadata": {"type": "object", "description": "The document's metadata and the chunk's "
                 "location: section, page, start_line, end_line, char_start, char_end"},
}


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


def _listed(item: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"object": {"const": "list"},
                             "data": {"type": "array", "items": {"$ref": _REF.format(name=item)}},
                             **(extra or {})}
    return _obj(props)


def _deleted(kind: str) -> dict[str, Any]:
    return _obj({"id": _STR, "object": {"const": f"rag.{kind}.deleted"},
                 "deleted": {"const": True}, "chunks": {"type": "integer", "minimum": 0}})


def _rename_refs(node: Any) -> Any:
    """The input types' own references, pointed at their `Rag`-prefixed names."""
    if isinstance(node, dict):
        return {k: (v.replace("/schemas/", "/schemas/Rag", 1) if k == "$ref" else _rename_refs(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_refs(v) for v in node]
    return node


_, _INPUTS = msgspec.json.schema_components(
    [CollectionCreate, CollectionUpdate, DocumentIn, SearchIn], ref_template=_REF)
_INPUTS["FilterOps"]["minProperties"] = 1  # an empty condition is refused (400)
SCHEMAS: dict[str, Any] = {
    **{f"Rag{name}": _rename_refs(schema) for name, schema in _INPUTS.items()},
    "RagCollection": _obj(_COLLECTION_PROPS),
    "RagCollectionList": _listed("RagCollection"),
    "RagDocument": _obj(_DOCUMENT_PROPS),
    "RagDocumentList": _listed("RagDocument", {
        "has_more": {"type": "boolean"}, "last_id": {"type": ["string", "null"]}}),
    "RagHit": _obj(_HIT_PROPS),
    "RagHitList": _listed("RagHit"),
    "RagIngestion": {"type": "object", "required": ["object", "collection"],
                     "description": "What the ingestion did: documents added, replaced, "
                                    "unchanged and failed (with reasons), chunks, tokens",
                     "properties": {"object": {"const": "rag.ingestion"},
                                    "collection": _STR}},
    "RagCollectionDeleted": _deleted("collection"),
    "RagDocumentDeleted": _deleted("document"),
}



def _query(kind: type[Any]) -> list[dict[str, Any]]:
    _, defs = msgspec.json.schema_components([kind])
    spec = defs[kind.__name__]
    out = []
    for name, schema in spec["properties"].items():
        alts = schema.pop("anyOf", None)
        if alts is not None:
            kept = [a for a in alts if a.get("type") != "null"]
            schema.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
        if schema.get("default", 0) is None:
            del schema["default"]
        out.append({"name": name, "in": "query", "required": False, "schema": schema})
    return out


def _links() -> dict[str, Any]:
    """What a created collection's name (its id works too) is used for next."""
    by_name = {"collection": "$response.body#/name"}
    return {op: {"operationId": op, "parameters": by_name}
            for op in ("retrieveRagCollection", "updateRagCollection", "deleteRagCollection",
                       "listRagDocuments", "ingestRagDocuments", "searchRagCollection")}


def rag_paths(bearer: list[dict[str, list[str]]], errors: Any, json_body: Any) -> dict[str, Any]:
    """`errors(*codes)` and `json_body(description, schema)` are `openapi.py`'s helpers."""
    collection = {"name": "collection", "in": "path", "required": True,
                  "description": "A collection's name; `owner/name` (the slash encoded as "
                                 "%2F) for one another team shared",
                  "schema": {"type": "string", "minLength": 1, "maxLength": 257,
                             "pattern": rf"^(?:[A-Za-z0-9_.\-]{{0,128}}/)?"
                                        rf"{COLLECTION_NAME[1:]}"}}
    document = {"name": "document_id", "in": "path", "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_DOCUMENT_ID}}

    def body(schema: str) -> dict[str, Any]:
        # A body with no required field may be left out (the server reads it as `{}`).
        return {"required": bool(SCHEMAS[schema].get("required")), "content": {
            "application/json": {
            "schema": {"$ref": _REF.format(name=schema)}}}}

    def op(op_id: str, description: str, permission: str, ok: dict[str, Any],
           codes: tuple[int, ...], **extra: Any) -> dict[str, Any]:
        return {"operationId": op_id, "description": description, "security": bearer,
                "tags": ["rag"], "x-permission": permission, **extra,
                "responses": {**ok, **errors(401, 403, *codes)}}

    one = "/v1/rag/collections/{collection}"
    upload_query = _query(UploadQuery)
    upload = {"type": "string", "format": "binary",
              "description": "a file a loader reads (else 415: its type, or its content); "
                             "sent raw, it may have its own type (text/markdown, "
                             "application/pdf...) and is named by `filename`"}
    ingest_body = {"required": True, "content": {
        "application/json": {"schema": {"anyOf": [
            {"$ref": _REF.format(name="RagDocumentIn")},
            {"type": "array", "minItems": 1, "maxItems": 1000,
             "items": {"$ref": _REF.format(name="RagDocumentIn")}}]}},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": upload, **{p["name"]: p["schema"] for p in upload_query
                                              if p["name"] != "filename"},
                           "metadata": {"type": "string", "pattern": r"^\s*\{[\s\S]*\}\s*$",
                                        "description": "a JSON object"}}}},
        "application/octet-stream": {"schema": upload}}}
    return {
        "/v1/rag/collections": {
            "get": op("listRagCollections", "The collections this key sees: its team's own "
                      "and those shared with it.", "rag:read",
                      {"200": json_body("Collections", "RagCollectionList")}, ()),
            "post": op("createRagCollection", "A new collection of the key's team.",
                       "rag:write", {"201": {**json_body("Created", "RagCollection"),
                                             "links": _links()}},
                       (400, 409, 413), requestBody=body("RagCollectionCreate"))},
        one: {
            "get": op("retrieveRagCollection", "One collection.", "rag:read",
                      {"200": json_body("The collection", "RagCollection")}, (400, 404),
                      parameters=[collection]),
            "patch": op("updateRagCollection", "Who else reads it, its description and "
                        "metadata (owner team only).", "rag:write",
                        {"200": json_body("The collection", "RagCollection")},
                        (400, 404, 413), parameters=[collection],
                        requestBody=body("RagCollectionUpdate")),
            "delete": op("deleteRagCollection", "The collection, every document and chunk.",
                         "rag:write", {"200": json_body("Deleted", "RagCollectionDeleted")},
                         (400, 404), parameters=[collection])},
        one + "/documents": {
            "get": op("listRagDocuments", "Its documents, by id.", "rag:read",
                      {"200": json_body("Documents", "RagDocumentList")}, (400, 404),
                      parameters=[collection, *_query(DocumentsQuery)]),
            "post": op("ingestRagDocuments", "Loads, chunks, embeds and stores documents; a "
                       "stored id is replaced, an unchanged one skipped. Every document is "
                       "loaded before any is stored.", "rag:write",
                       {"200": json_body("What was ingested", "RagIngestion")},
                       (400, 404, 413, 415, 502),
                       parameters=[collection, *upload_query],
                       requestBody=ingest_body)},
        one + "/documents/{document_id}": {
            "get": op("retrieveRagDocument", "One document's record.", "rag:read",
                      {"200": json_body("The document", "RagDocument")}, (400, 404),
                      parameters=[collection, document]),
            "delete": op("deleteRagDocument", "The document and its chunks.", "rag:write",
                         {"200": json_body("Deleted", "RagDocumentDeleted")}, (400, 404),
                         parameters=[collection, document])},
        one + "/search": {
            "post": op("searchRagCollection", "BM25 and vectors fused (or one of them), "
                       "filtered, optionally diversified and re-ranked.", "rag:read",
                       {"200": json_body("Hits, best first", "RagHitList")},
                       (400, 404, 413), parameters=[collection],
                       requestBody=body("RagSearchIn"))},
    }
