"""What the knowledge-base API accepts: request bodies and query strings, as types.

One definition for the HTTP routes (`server/routes/rag.py`), the OpenAPI document
(`server/openapi_rag.py`, generated from these) and the CLI. Decoded with
`gatewise.security.inputs.decode_input`/`parse_query`, so a value out of range, an unknown
field or a forbidden character is a 400 naming the field before any store is touched.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.rag.service import COLLECTION_NAME, MAX_DOCUMENT_ID, check_filters
from gatewise.security.inputs import Input, Query
from gatewise.types.limits import END, TEAM_ID_PATTERN

__all__ = ["CHUNKERS", "FORMATS", "CollectionCreate", "CollectionName", "CollectionUpdate",
           "DocumentIn", "DocumentsQuery", "SearchIn", "UploadQuery"]

CHUNKERS = ("fixed", "sentence", "recursive", "code", "semantic")
FORMATS = ("text", "markdown", "html", "code", "jsonl")
# Shared with a team (its id) or with every team (`*`).
_SHARE_PATTERN = rf"^(?:\*|{TEAM_ID_PATTERN[1:-len(END)]}){END}"
CollectionName = Annotated[str, msgspec.Meta(
    pattern=COLLECTION_NAME, description="1-128 of A-Z a-z 0-9 _ . - starting with a letter "
    "or digit")]
ShareTarget = Annotated[str, msgspec.Meta(pattern=_SHARE_PATTERN,
                                          description="a team id, or * for every team")]
ShareList = Annotated[list[ShareTarget], msgspec.Meta(max_length=256)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
Metadata = Annotated[dict[Annotated[str, msgspec.Meta(min_length=1, max_length=128)], Any],
                     msgspec.Meta(max_length=64)]
DocumentId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_DOCUMENT_ID,
                                         pattern=r"^[^\x00]+$")]
Chunker = Literal["fixed", "sentence", "recursive", "code", "semantic"]
Format = Literal["text", "markdown", "html", "code", "jsonl"]
Mode = Literal["hybrid", "vector", "bm25"]
Scalar = str | int | float | bool | None


class FilterOps(msgspec.Struct, forbid_unknown_fields=True,
                rename={"in_": "$in", "ne": "$ne", "gte": "$gte", "lte": "$lte"}):
    """The operators of one field's condition (several apply together)."""

    in_: Annotated[list[Scalar], msgspec.Meta(max_length=1000)] | msgspec.UnsetType = \
        msgspec.UNSET
    ne: Scalar | msgspec.UnsetType = msgspec.UNSET
    gte: int | float | str | msgspec.UnsetType = msgspec.UNSET
    lte: int | float | str | msgspec.UnsetType = msgspec.UNSET


FilterField = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[^$]")]
FilterMap = Annotated[
    dict[FilterField, Scalar | Annotated[FilterOps, msgspec.Meta(
        extra_json_schema={"minProperties": 1})]],
    msgspec.Meta(max_length=32, description=(
        "field → value (equality) or → {$in: [...], $ne: v, $gte: v, $lte: v}; fields are "
        "chunk metadata keys (the document's fields and section, page, start_line...)"))]


class CollectionCreate(Input):
    name: CollectionName
    description: Description = ""
    shared_with: ShareList = msgspec.field(default_factory=list)
    chunker: Chunker | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    # An admin creating a collection for a team; anyone else creates for their own team.
    team: Annotated[str, msgspec.Meta(pattern=TEAM_ID_PATTERN)] | None = None


class CollectionUpdate(Input):
    """What may change: who else reads it, its description and metadata (the embedder, the
    chunker and the owner are fixed: changing them means re-ingesting)."""

    shared_with: ShareList | None = None
    description: Description | None = None
    metadata: Metadata | None = None


# A document's text (one that is only white space is refused: 400 `empty_document`).
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=64 * 1024 * 1024)]


class DocumentIn(Input):
    """A document sent as text. `format` forces a loader (markdown, html...); unset, the
    text is plain text (or what `metadata.source`'s extension says)."""

    text: Text
    id: DocumentId | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    format: Format | None = None


class SearchIn(Input):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=8000, pattern=r"\S")]
    k: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    filters: FilterMap | None = None
    mmr: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    rerank: Annotated[bool, msgspec.Meta(
        description="re-rank with the configured rag.rerank_model (400 when there is none)")] \
        = False
    mode: Mode = "hybrid"

    def check(self) -> None:
        if not self.query.strip():
            raise InvalidRequestError("the query is empty", param="query")
        check_filters(self.filter_map())

    def filter_map(self) -> dict[str, Any] | None:
        """The filters as the retriever takes them (operators by their `$` names)."""
        if self.filters is None:
            return None
        out: dict[str, Any] = msgspec.to_builtins(self.filters)
        return out


class DocumentsQuery(Query):
    after: Annotated[str, msgspec.Meta(max_length=MAX_DOCUMENT_ID)] = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class UploadQuery(Query):
    """A raw upload's name, id and loader (the body is the file, typed by `Content-Type`)."""

    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=1024,
                                          pattern=r"^[^\x00]+$")] | None = None
    id: DocumentId | None = None
    format: Literal["text", "markdown", "html", "pdf", "code", "jsonl"] | None = None
