"""JSON Lines: one document per file, one section of kind "record" per non-blank line.

How a record maps: its text is the first of `text`, `content`, `body` (also `page_content`,
`document`) that is a non-empty string; its other scalar fields (strings, numbers, booleans)
become the section's metadata, and so every one of its chunks' (nested objects and lists are
dropped). An `id` field names the record: it becomes the section path (what citations show)
and `record_id` in the metadata; without one the path is `line N`. `title` in a record stays
a record field; the document's title is the file's name. The line number is the record's
line range. A line that is not a JSON object, or an object without text, is refused with its
line number: a half-read file is worse than a clear error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gatewise.errors import UnsupportedDocumentError
from gatewise.rag.loaders._common import Part, build_document, clean_text, decode_text
from gatewise.rag.types import LoadedDocument

TEXT_FIELDS = ("text", "content", "body", "page_content", "document")


def parse_record(line: str, number: int) -> Part | None:
    """The record on line `number` as a part (None for a record whose text is blank)."""
    try:
        record = json.loads(line)
    except ValueError:
        raise UnsupportedDocumentError(f"line {number} is not valid JSON") from None
    if not isinstance(record, dict):
        raise UnsupportedDocumentError(f"line {number} is not a JSON object")
    field = next((f for f in TEXT_FIELDS if isinstance(record.get(f), str)), None)
    if field is None:
        raise UnsupportedDocumentError(
            f"line {number} has no text field (one of {', '.join(TEXT_FIELDS)})")
    meta: dict[str, Any] = {k: v for k, v in record.items()
                            if k != field and isinstance(v, str | int | float | bool)}
    record_id = meta.pop("id", None)
    label = f"line {number}" if record_id is None else str(record_id)
    if record_id is not None:
        meta["record_id"] = record_id
    text = clean_text(record[field]).strip()
    if not text:
        return None
    return Part(text, kind="record", path=(label,), start_line=number, end_line=number,
                metadata=meta)


def load_jsonl(data: bytes, *, source: str | None, document_id: str | None,
               metadata: Mapping[str, Any] | None) -> LoadedDocument:
    text = decode_text(data, what="JSONL file")
    parts = [part for number, line in enumerate(text.split("\n"), start=1)
             if line.strip() and (part := parse_record(line, number)) is not None]
    title = source.replace("\\", "/").rsplit("/", 1)[-1] if source else None
    return build_document(parts, fmt="jsonl", source=source, document_id=document_id,
                          title=title, metadata=metadata, extra={"records": len(parts)})
