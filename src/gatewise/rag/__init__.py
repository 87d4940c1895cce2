"""Retrieval-augmented answers: ingest documents into team-scoped collections, search them
(BM25 and vectors fused, filters, diversity, optional re-ranking), and answer with citations.

Layout (one idea per module):
- `types.py`: the shared shapes (`Section`, `LoadedDocument`, `Chunk`, `Hit`, records).
- `loaders/`: text, Markdown, HTML, PDF, source code, JSONL → `LoadedDocument`.
- `chunkers/`: fixed token windows, sentences/paragraphs, recursive by structure, code by
  syntax, semantic; one `Chunker` interface.
- `ingest.py`: load → chunk → embed (batched) → store, idempotent and resumable.
- `index.py`, `bm25.py`, `filters.py`, `search.py`: the per-process vector and BM25
  indexes, metadata filters and hybrid retrieval.
- `citations.py`, `answer.py`, `middleware.py`: the prompt with numbered sources, citation
  markers resolved to chunks, the groundedness check, the chat-stage that does it.
- `service.py`, `build.py`: the facade the gateway, the HTTP routes and the CLI call.

numpy, usearch, pypdf and the BM25 library are imported only by these modules and on first
use (the `rag` extra), never by `import gatewise`.
"""
