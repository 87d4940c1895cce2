"""Chunkers: a `LoadedDocument` → `Chunk`s of at most `tokens` tokens, each carrying its
location (see `_build`). One interface (`gatewise.rag.types.Chunker`), five strategies:

- `fixed`: token windows with `overlap`, blind to structure (a baseline).
- `sentence`: whole sentences packed, with sentence overlap; any language.
- `recursive` (the default): the loader's sections, then paragraphs, sentences, words; small
  sibling sections merged; code sections by syntax.
- `code`: functions and classes (Python by `ast`, other languages by a heuristic).
- `semantic`: breaks where neighbouring sentences' embeddings drift apart.

Each chunker has a `settings` string (name and parameters): the ingestor puts it in a
document's digest, so changing how a collection is chunked re-chunks its documents.

Given the embedder's `Window` (`gatewise.embedding.window_of`), every chunk also fits what
one vector reads: budgets are in cl100k tokens, but the local model reads 254 word pieces,
and code or non-English text takes more of those than of cl100k tokens, so about one 256-token
chunk in eleven used to end in a tail no vector saw. The window is honoured through the
counter (`BoundedCount`), so each strategy keeps its own cutting rules; its label joins the
settings, so collections chunked without it are re-chunked on their next ingestion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gatewise.errors import InvalidRequestError
from gatewise.rag.chunkers.code import CodeChunker
from gatewise.rag.chunkers.fixed import FixedChunker
from gatewise.rag.chunkers.recursive import RecursiveChunker
from gatewise.rag.chunkers.semantic import SemanticChunker
from gatewise.rag.chunkers.sentence import SentenceChunker
from gatewise.rag.types import Chunker

if TYPE_CHECKING:
    from gatewise.embedding.base import TextEmbedder, Window

__all__ = ["CHUNKERS", "CodeChunker", "FixedChunker", "RecursiveChunker", "SemanticChunker",
           "SentenceChunker", "default_counter", "make_chunker"]

CHUNKERS = ("fixed", "sentence", "recursive", "code", "semantic")


def make_chunker(name: str, *, tokens: int, overlap: int = 0, count: Callable[[str], int],
                 embedder: TextEmbedder | None = None, window: Window | None = None) -> Chunker:
    """The chunker called `name`. `count` is the token counter budgets are measured in
    (`default_counter()` for cl100k); `embedder` is required by `semantic` only; `window`,
    the embedder's, keeps every chunk within what one vector reads as well."""
    if window is None:
        return _make(name, tokens=tokens, overlap=overlap, count=count, embedder=embedder)
    from gatewise.embedding.base import BoundedCount

    made = _make(name, tokens=tokens, overlap=overlap, embedder=embedder,
                 count=BoundedCount(count, window, tokens))
    made.settings = f"{made.settings}:{window.label}"
    return made


def _make(name: str, *, tokens: int, overlap: int, count: Callable[[str], int],
          embedder: TextEmbedder | None
          ) -> FixedChunker | SentenceChunker | RecursiveChunker | CodeChunker | SemanticChunker:
    if tokens < 1:
        raise InvalidRequestError("chunk tokens must be at least 1", param="chunk_tokens")
    if not 0 <= overlap < tokens:
        raise InvalidRequestError("chunk overlap must be at least 0 and less than the chunk tokens",
                                  param="chunk_overlap")
    if name == "fixed":
        return FixedChunker(tokens=tokens, overlap=overlap, count=count)
    if name == "sentence":
        return SentenceChunker(tokens=tokens, overlap=overlap, count=count)
    if name == "recursive":
        return RecursiveChunker(tokens=tokens, count=count)
    if name == "code":
        return CodeChunker(tokens=tokens, count=count)
    if name == "semantic":
        if embedder is None:
            raise InvalidRequestError("the semantic chunker needs an embedder", param="chunker")
        return SemanticChunker(tokens=tokens, count=count, embedder=embedder)
    raise InvalidRequestError(f"unknown chunker {name!r}; one of {', '.join(CHUNKERS)}",
                              param="chunker")


def default_counter() -> Callable[[str], int]:
    """cl100k_base, counted offline (what the chunk budgets of a collection mean by a
    token unless a caller gives another counter)."""
    from gatewise.accounting.tokenizers import CL100K, Tokenizers

    return Tokenizers().encoding(CL100K).count
