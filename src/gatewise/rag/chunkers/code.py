"""`code`: source split by syntax (see `_code`): one chunk per function or class where it
fits, small neighbours (imports, constants, one-line helpers) grouped, a class too large
opened into its methods, and anything still too large cut between lines (blank lines first).
The chunk's `section` names its symbols (`Parser.feed`) and its line range is exact. The
prose sections of a document that is not code (a Markdown file's text around its fenced
code) are chunked as `recursive` does.
"""

from __future__ import annotations

import ast

from gatewise.rag.chunkers._build import ChunkBuilder, Piece, prose_pieces
from gatewise.rag.chunkers._code import Block, class_blocks, heuristic_blocks, python_blocks
from gatewise.rag.chunkers._spans import CODE, Count, split_to_fit, strip
from gatewise.rag.types import Chunk, LoadedDocument


def _small(tokens: int, budget: int) -> bool:
    return tokens < max(8, budget // 4)


def code_pieces(b: ChunkBuilder, index: int, budget: int, count: Count, language: str) -> list[Piece]:
    """The pieces of one code section."""
    section = b.sections[index]
    base, text = section.char_start, section.text
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    lang = language.lower()
    blocks = python_blocks(text, lines) if lang == "python" else None
    if blocks is None:
        blocks = heuristic_blocks(lines, lang)
    path = section.path

    def span(block: Block) -> tuple[int, int]:
        return strip(b.text, base + offsets[block.first], base + offsets[block.last + 1] - 1)

    # Each block as (start, end, tokens, symbol, whole), opened or cut until it fits; only
    # whole blocks merge with their neighbours (a cut function's tail stays its own). Blocks
    # are counted exactly: merging on estimates would merge less and make more chunks, and
    # each chunk costs far more to embed than a count costs.
    parts: list[tuple[int, int, int, str | None, bool]] = []
    pending = list(reversed(blocks))
    while pending:
        block = pending.pop()
        start, end = span(block)
        if start >= end:
            continue
        if b.tokens.estimate(start, end) <= budget * 2:
            tokens = b.tokens.exact(start, end)
            if tokens <= budget:
                parts.append((start, end, tokens, block.symbol, True))
                continue
        if isinstance(block.node, ast.ClassDef):
            inner = class_blocks(block, lines)
            if len(inner) > 1:
                pending.extend(reversed(inner))
                continue
        parts.extend((s, e, c, block.symbol, False)
                     for (s, e), c in split_to_fit(b.tokens, start, end, budget, CODE))
    # Small neighbours grouped.
    merged: list[tuple[int, int, int, list[str], bool]] = []
    for start, end, tokens, symbol, whole in parts:
        if merged and whole:
            ps, _, pt, psyms, pwhole = merged[-1]
            if pwhole and (_small(tokens, budget) or _small(pt, budget)) and pt + tokens <= budget:
                joined = b.tokens.exact(ps, end)
                if joined <= budget:
                    syms = psyms + ([symbol] if symbol and symbol not in psyms else [])
                    merged[-1] = (ps, end, joined, syms, True)
                    continue
        merged.append((start, end, tokens, [symbol] if symbol else [], whole))
    return [Piece(s, e, t, path=(*path, ", ".join(syms)) if syms else path,
                  extra={"symbols": syms} if syms else None)
            for s, e, t, syms, _ in merged]


class CodeChunker:
    def __init__(self, *, tokens: int, count: Count) -> None:
        self.name = "code"
        self.tokens = tokens
        self.count = count
        self.settings = f"code:{tokens}"

    def chunk(self, document: LoadedDocument) -> list[Chunk]:
        b = ChunkBuilder(document, self.count)
        language = str(document.metadata.get("language") or "")
        pieces: list[Piece] = []
        for index, section in enumerate(b.sections):
            if section.kind == "code":
                lang = str(section.metadata.get("code_language") or language)
                pieces.extend(code_pieces(b, index, self.tokens, self.count, lang))
            else:
                pieces.extend(prose_pieces(b, index, self.tokens))
        return b.make(pieces)
