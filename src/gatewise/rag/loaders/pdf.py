"""PDF, read with pypdf (pure Python): one prose section per page (`page` 1-based), titled by
the document's metadata, else its first line of text.

A PDF is a program a stranger wrote, so reading one is bounded:
- at most `MAX_PAGES` pages (2,000): a longer file is refused before any page is read, since
  the page count comes from the page tree, which costs little;
- a page's content stream is inflated (zlib, fast) and measured before pypdf parses it
  (pure Python, slow): over `MAX_PAGE_CONTENT_BYTES` (8 MB) on one page or
  `MAX_CONTENT_BYTES` (64 MB) over the file, it is refused, so a 100 KB decompression bomb
  (or one huge stream shared by two thousand pages) never costs minutes of parsing; pypdf
  itself refuses to inflate one stream past 75 MB;
- at most `MAX_PAGE_CHARS` (200,000) characters from one page and `MAX_CHARS` from the whole
  file, and at most `MAX_SECONDS` (60 s) of extraction: past any of these the file is
  refused, never half-read;
- any exception pypdf raises on a truncated, garbage or hostile file (it raises many kinds,
  not only `PdfReadError`) is a 415 `UnsupportedDocumentError`, never a 500; so is an
  encrypted file that the empty password does not open.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Mapping
from typing import Any

from gatewise.errors import UnsupportedDocumentError
from gatewise.rag.loaders._common import MAX_CHARS, Part, build_document, clean_text, first_line
from gatewise.rag.types import LoadedDocument

MAX_PAGES = 2_000
MAX_PAGE_CHARS = 200_000
MAX_PAGE_CONTENT_BYTES = 8_000_000
MAX_CONTENT_BYTES = 64_000_000
MAX_SECONDS = 60.0
_TRAILING = re.compile(r"[ \t]+\n")
_BLANKS = re.compile(r"\n{3,}")


def load_pdf(data: bytes, *, source: str | None, document_id: str | None,
             metadata: Mapping[str, Any] | None) -> LoadedDocument:
    try:
        from pypdf import PdfReader
    except ImportError as exc:  # pragma: no cover - the `rag` extra installs it
        raise UnsupportedDocumentError(
            "reading PDF needs pypdf: pip install 'gatewise[rag]'") from exc
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise UnsupportedDocumentError("not a PDF file (no %PDF header)")
    parts: list[Part] = []
    title: str | None = None
    total = content = 0
    deadline = time.monotonic() + MAX_SECONDS
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnsupportedDocumentError("the PDF is encrypted")
        pages = len(reader.pages)
        if pages > MAX_PAGES:
            raise UnsupportedDocumentError(
                f"the PDF has {pages:,} pages; at most {MAX_PAGES:,} are read (split it)")
        info = reader.metadata
        if info is not None and info.title:
            title = str(info.title).strip() or None
        for number, page in enumerate(reader.pages, start=1):
            stream = page.get_contents()
            size = len(stream.get_data()) if stream is not None else 0
            content += size
            if size > MAX_PAGE_CONTENT_BYTES or content > MAX_CONTENT_BYTES:
                raise UnsupportedDocumentError(
                    f"page {number} of the PDF inflates to {size:,} bytes of drawing "
                    f"instructions ({content:,} so far); at most {MAX_PAGE_CONTENT_BYTES:,} a page "
                    f"and {MAX_CONTENT_BYTES:,} a file are read")
            if time.monotonic() > deadline:
                raise UnsupportedDocumentError(
                    f"reading the PDF took more than {MAX_SECONDS:.0f} s (stopped at page {number})")
            raw = page.extract_text() or ""
            if len(raw) > MAX_PAGE_CHARS:
                raise UnsupportedDocumentError(
                    f"page {number} of the PDF yields more than {MAX_PAGE_CHARS:,} characters")
            total += len(raw)
            if total > MAX_CHARS:
                raise UnsupportedDocumentError(
                    f"the PDF yields more than {MAX_CHARS:,} characters of text; split it")
            text = _BLANKS.sub("\n\n", _TRAILING.sub("\n", clean_text(raw))).strip()
            parts.append(Part(text, page=number))
    except UnsupportedDocumentError:
        raise
    except Exception as exc:
        raise UnsupportedDocumentError(
            f"the PDF cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from None
    if title is None and parts:
        title = first_line(parts[0].text)
    return build_document(parts, fmt="pdf", source=source, document_id=document_id,
                          title=title, metadata=metadata, extra={"pages": len(parts)})
