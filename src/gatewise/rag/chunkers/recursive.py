"""`recursive`: the document's own structure first, then finer cuts only where needed.

1. Each section the loader found (a Markdown or HTML heading's text, a PDF page, a JSONL
   record, a fenced code block) is a chunk when it fits in `tokens`.
2. A section that does not fit is cut at paragraphs, then sentences, lines, words (and
   characters as a last resort) and the pieces packed back up to the budget
   (`_spans.split_to_fit`); code sections are cut by syntax instead (`code.code_pieces`).
3. Small neighbouring prose pieces under the same heading merge: siblings (`Install >
   Linux`, `Install > macOS`) or a heading and its first child, when either is small (under a
   quarter of the budget) and together they fit. The merged chunk's `section` is the heading
   they share. Records, code and pieces of different PDF pages never merge, so no chunk
   crosses a page boundary.

No overlap: chunks follow the structure, and a heading already says what a piece is about.
"""

from __future__ import annotations

from gatewise.rag.chunkers._build import ChunkBuilder, Piece, prose_pieces
from gatewise.rag.chunkers._spans import Count
from gatewise.rag.chunkers.code import code_pieces
from gatewise.rag.types import Chunk, LoadedDocument

# A piece this small is a heading with (almost) nothing under it.
_HEADING_ONLY = 12


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _related(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...] | None:
    """The path two pieces share when they may merge (siblings, parent and child, the same
    section, or text before the first heading with what follows), else None."""
    common = _common(a, b)
    if len(common) < max(len(a), len(b)) - 1:
        return None
    if not common and a and b:  # two different top-level sections
        return None
    return common or a or b


class RecursiveChunker:
    def __init__(self, *, tokens: int, count: Count) -> None:
        self.name = "recursive"
        self.tokens = tokens
        self.count = count
        self.settings = f"recursive:{tokens}"

    def chunk(self, document: LoadedDocument) -> list[Chunk]:
        b = ChunkBuilder(document, self.count)
        budget, count = self.tokens, self.count
        language = str(document.metadata.get("language") or "")
        small = max(8, budget // 4)
        out: list[Piece] = []
        # For the piece last appended: whether it may merge, its page and its path.
        last: tuple[bool, int | None, tuple[str, ...]] | None = None
        for index, section in enumerate(b.sections):
            if section.kind == "code":
                lang = str(section.metadata.get("code_language") or language)
                out.extend(code_pieces(b, index, budget, count, lang))
                last = None
                continue
            for piece in prose_pieces(b, index, budget):
                mergeable = section.kind == "prose"
                if last is not None and mergeable and last[0] and last[1] == section.page \
                        and (piece.tokens < small or out[-1].tokens < small) \
                        and out[-1].tokens + piece.tokens <= budget:
                    path = _related(last[2], section.path)
                    if path is not None:
                        prev = out[-1]
                        if prev.tokens <= _HEADING_ONLY and path == last[2]:
                            path = section.path  # a lone heading goes with its first child
                        joined = count(b.text[prev.start:piece.end])
                        if joined <= budget:
                            out[-1] = Piece(prev.start, piece.end, joined, path=path)
                            last = (True, section.page, path)
                            continue
                out.append(piece)
                last = (mergeable, section.page, section.path)
        return b.make(out)
