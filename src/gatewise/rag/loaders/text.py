"""Plain text: one prose section holding the whole file (its lines kept exactly, so a chunk's
line range can be computed), titled by its first non-blank line. The chunkers find the
paragraphs and sentences."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatewise.rag.loaders._common import Part, build_document, decode_text, first_line, trim_lines
from gatewise.rag.types import LoadedDocument


def load_text(data: bytes, *, source: str | None, document_id: str | None,
              metadata: Mapping[str, Any] | None) -> LoadedDocument:
    text = decode_text(data)
    trimmed = trim_lines(text.split("\n"), 1)
    parts = [] if trimmed is None else [Part(trimmed[0], start_line=trimmed[1], end_line=trimmed[2])]
    return build_document(parts, fmt="text", source=source, document_id=document_id,
                          title=first_line(text), metadata=metadata)
