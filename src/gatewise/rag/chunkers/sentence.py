"""`sentence`: each section's paragraphs cut into sentences (see `_spans.sentences` for the
rules, which hold for German, Spanish, Japanese, Arabic, Hindi and more), packed whole into
chunks of at most `tokens` tokens. A chunk starts with as many of the previous chunk's last
sentences as fit in `overlap` tokens (none when a single sentence is longer). A sentence
longer than the budget alone is cut between words. Chunks never cross sections (a Markdown
heading, a PDF page, a JSONL record).
"""

from __future__ import annotations

from gatewise.rag.chunkers._build import ChunkBuilder, Piece
from gatewise.rag.chunkers._spans import (
    Count,
    Span,
    Tokens,
    paragraphs,
    sentences,
    split_to_fit,
    window,
)
from gatewise.rag.types import Chunk, LoadedDocument


def sentence_units(tk: Tokens, start: int, end: int, budget: int) -> tuple[list[Span], list[float]]:
    """The sentences of a span with their estimated tokens; one over `budget` comes in
    pieces."""
    text = tk.text
    units: list[Span] = []
    estimates: list[float] = []
    for pa, pb in paragraphs(text, start, end):
        for a, b in sentences(text, pa, pb):
            e = tk.estimate(a, b)
            if e <= budget:
                units.append((a, b))
                estimates.append(e)
            else:
                for span, c in split_to_fit(tk, a, b, budget, ("word",)):
                    units.append(span)
                    estimates.append(float(c))
    return units, estimates


def pack_overlapping(tk: Tokens, units: list[Span], estimates: list[float], budget: int,
                     overlap: int) -> list[Piece]:
    """Sentences packed by their estimates and fitted on the exact count (`Tokens.fit`); the
    next chunk starts with the last sentences that fit in `overlap` (by estimate)."""
    pieces: list[Piece] = []
    ends = [u[1] for u in units]
    i, n = 0, len(units)
    while i < n:
        j, tokens = window(tk, units, ends, estimates, i, budget)
        if tokens > budget:  # a lone sentence the estimate let through
            pieces.extend(Piece(a, e, t) for (a, e), t in
                          split_to_fit(tk, units[i][0], units[j][1], budget, ("word",), exact=tokens))
        else:
            pieces.append(Piece(units[i][0], units[j][1], tokens))
        if j == n - 1:
            break
        k, carried = j + 1, 0.0
        while k - 1 > i and carried + estimates[k - 1] <= overlap:
            k -= 1
            carried += estimates[k]
        i = k
    return pieces


class SentenceChunker:
    def __init__(self, *, tokens: int, overlap: int, count: Count) -> None:
        self.name = "sentence"
        self.tokens = tokens
        self.overlap = overlap
        self.count = count
        self.settings = f"sentence:{tokens}:{overlap}"

    def chunk(self, document: LoadedDocument) -> list[Chunk]:
        b = ChunkBuilder(document, self.count)
        pieces: list[Piece] = []
        for index in range(len(b.sections)):
            start, end = b.bounds(index)
            units, counts = sentence_units(b.tokens, start, end, self.tokens)
            pieces.extend(pack_overlapping(b.tokens, units, counts, self.tokens, self.overlap))
        return b.make(pieces)
