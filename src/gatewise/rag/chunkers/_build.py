"""Turning spans of a document's text into `Chunk`s with their location: the document's
metadata, the section's (a JSONL record's fields), and `section`, `page`, `start_line`,
`end_line`, `char_start`, `char_end`, `tokens`.

Offsets are into `LoadedDocument.text`, so `doc.text[char_start:char_end] == chunk.text`
always holds. Lines are computed from the section's own line range when its text is the
source's lines verbatim (Markdown, text, code, JSONL); a section whose text was rebuilt (an
HTML section) gives its whole source range.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gatewise.rag.chunkers._spans import PROSE, Count, Span, Tokens, split_to_fit
from gatewise.rag.types import Chunk, LoadedDocument, Section, chunk_id, section_label

_NL = re.compile("\n")


@dataclass(frozen=True, slots=True)
class Piece:
    """A span to become a chunk; `path` overrides the section's (a code symbol's)."""

    start: int
    end: int
    tokens: int
    path: tuple[str, ...] | None = None
    extra: Mapping[str, Any] | None = None


class ChunkBuilder:
    """One per document being chunked: holds its text and the section index."""

    def __init__(self, document: LoadedDocument, count: Count) -> None:
        self.document = document
        self.text = document.text  # joined once: `.text` builds the string on each access
        self.count = count
        # A window-bounded counter (`embedding.base.BoundedCount`) packs by its own figure;
        # a chunk still reports the budget's tokens (cl100k), so usage and limits mean the same.
        self._primary: Count | None = getattr(count, "primary", None)
        self.sections = document.sections
        self._starts = [s.char_start for s in self.sections]
        self._newlines: list[int] | None = None
        self._tokens: Tokens | None = None
        self._exact_lines: dict[int, bool] = {}

    @property
    def tokens(self) -> Tokens:
        """The document's token estimator (built on first use)."""
        if self._tokens is None:
            self._tokens = Tokens(self.text, self.count)
        return self._tokens

    def section_at(self, pos: int) -> int:
        return max(0, bisect.bisect_right(self._starts, pos) - 1)

    def bounds(self, index: int) -> Span:
        s = self.sections[index]
        return s.char_start, s.char_start + len(s.text)

    def _verbatim(self, section: Section) -> bool:
        """Whether the section's text is its source lines as they were (so a line can be
        computed from an offset); counted once per section."""
        key = id(section)
        found = self._exact_lines.get(key)
        if found is None:
            found = self._exact_lines[key] = (
                section.start_line is not None and section.end_line is not None
                and section.end_line - section.start_line == section.text.count("\n"))
        return found

    def _line(self, section: Section, pos: int, *, end: bool) -> int | None:
        if section.start_line is None:
            return None
        if not self._verbatim(section):
            return section.end_line if end else section.start_line
        if self._newlines is None:
            self._newlines = [m.start() for m in _NL.finditer(self.text)]
        nl = self._newlines
        before = bisect.bisect_left(nl, pos) - bisect.bisect_left(nl, section.char_start)
        return section.start_line + before

    def make(self, pieces: list[Piece]) -> list[Chunk]:
        doc = self.document
        chunks: list[Chunk] = []
        for ordinal, p in enumerate(pieces):
            first = self.sections[self.section_at(p.start)]
            last = self.sections[self.section_at(max(p.start, p.end - 1))]
            meta: dict[str, Any] = dict(doc.metadata)
            meta.update(first.metadata)
            meta["section"] = section_label(p.path if p.path is not None else first.path)
            if first.page is not None:
                meta["page"] = first.page
            if last.page is not None and last.page != first.page:
                meta["end_page"] = last.page
            start_line = self._line(first, p.start, end=False)
            end_line = self._line(last, max(p.start, p.end - 1), end=True)
            if start_line is not None:
                meta["start_line"] = start_line
            if end_line is not None:
                meta["end_line"] = end_line
            text = self.text[p.start:p.end]
            tokens = p.tokens if self._primary is None else self._primary(text)
            meta["char_start"], meta["char_end"], meta["tokens"] = p.start, p.end, tokens
            meta.update(p.extra or {})
            chunks.append(Chunk(id=chunk_id(doc.id, ordinal), document_id=doc.id, ordinal=ordinal,
                                text=text, tokens=tokens, metadata=meta))
        return chunks


def prose_pieces(b: ChunkBuilder, index: int, budget: int) -> list[Piece]:
    """A prose or record section in pieces of at most `budget` tokens (whole when it fits)."""
    start, end = b.bounds(index)
    return [Piece(s, e, t) for (s, e), t in split_to_fit(b.tokens, start, end, budget, PROSE)]
