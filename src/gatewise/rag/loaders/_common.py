"""What every loader shares: decoding bytes into text safely, the limits that keep a hostile
file from eating the process, assembling sections into a `LoadedDocument` whose section
offsets agree with `LoadedDocument.text`, and the stable document id.

Limits, and why each one:
- `MAX_CHARS` (8 M characters): the most text one document may yield. A decompression bomb
  in a PDF or a gigantic text file stops here (a PDF is read page by page and cut at the cap;
  text beyond it is refused rather than silently half-ingested).
- NUL bytes: a text file with more than a few (`_MAX_NUL_RATIO`) is binary and refused; a
  stray one is stripped, since no tokenizer, database or prompt wants it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gatewise.errors import EmptyDocumentError, UnsupportedDocumentError
from gatewise.rag.loaders._language import detect_language
from gatewise.rag.types import LoadedDocument, Section, SectionKind

MAX_CHARS = 8_000_000
_MAX_NUL_RATIO = 0.001
# C0 controls other than tab, newline, carriage return and form feed; DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
SEPARATOR = "\n\n"  # what LoadedDocument.text puts between sections


def decode_text(data: bytes, *, what: str = "document") -> str:
    """UTF-8 (a BOM is dropped) with newlines normalised to `\\n` and control characters
    removed. Anything else is refused: guessing an encoding wrongly would store mojibake that
    no query ever matches."""
    if data.count(b"\x00") > max(2, int(len(data) * _MAX_NUL_RATIO)):
        raise UnsupportedDocumentError(f"the {what} looks binary (NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedDocumentError(
            f"the {what} is not UTF-8 text (invalid byte at offset {exc.start})") from None
    return clean_text(text)


def clean_text(text: str) -> str:
    """Newlines normalised, control characters (NUL included) removed, capped at MAX_CHARS."""
    if len(text) > MAX_CHARS:
        raise UnsupportedDocumentError(
            f"the document yields more than {MAX_CHARS:,} characters of text; split it")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


@dataclass(frozen=True, slots=True)
class Part:
    """A section before assembly (its offset is not known yet)."""

    text: str
    kind: SectionKind = "prose"
    path: tuple[str, ...] = ()
    page: int | None = None
    start_line: int | None = None
    end_line: int | None = None
    metadata: Mapping[str, Any] | None = None


def trim_lines(lines: list[str], first_line: int) -> tuple[str, int, int] | None:
    """Blank lines dropped from both ends: (text, start_line, end_line), or None when only
    blank lines remain. Lines are 1-based and inclusive."""
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    if start == end:
        return None
    return "\n".join(lines[start:end]), first_line + start, first_line + end - 1


def assemble(parts: Iterable[Part]) -> tuple[Section, ...]:
    """Sections with `char_start` set so that `doc.text[s.char_start:][:len(s.text)] ==
    s.text`; parts with no visible text are dropped."""
    sections: list[Section] = []
    offset = 0
    for part in parts:
        if not part.text.strip():
            continue
        sections.append(Section(text=part.text, kind=part.kind, path=part.path, page=part.page,
                                start_line=part.start_line, end_line=part.end_line,
                                char_start=offset, metadata=dict(part.metadata or {})))
        offset += len(part.text) + len(SEPARATOR)
    return tuple(sections)


def normalise_source(source: str) -> str:
    """A path as a stable id: separators as `/`, `.` and `..` folded, no leading `./`."""
    return os.path.normpath(source).replace(os.sep, "/")


def content_id(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def build_document(parts: Iterable[Part], *, fmt: str, source: str | None, document_id: str | None,
                   title: str | None, metadata: Mapping[str, Any] | None,
                   language: str | None = None,
                   extra: Mapping[str, Any] | None = None) -> LoadedDocument:
    """The document with its metadata: source, title, format, language (the natural one,
    guessed from the text, unless the loader knows better, e.g. a programming language),
    the loader's `extra`, then the caller's fields (which win)."""
    source = normalise_source(source) if source else None
    sections = assemble(parts)
    if not sections:
        raise EmptyDocumentError(f"the document{f' {source!r}' if source else ''} has no text")
    text = SEPARATOR.join(s.text for s in sections)
    meta: dict[str, Any] = {"format": fmt}
    if source:
        meta["source"] = source
    if title:
        meta["title"] = title[:300]
    lang = language or detect_language(text)
    if lang:
        meta["language"] = lang
    meta.update(extra or {})
    meta.update(metadata or {})
    doc_id = document_id or (normalise_source(source) if source else content_id(text))
    return LoadedDocument(id=doc_id, sections=sections, metadata=meta)


def first_line(text: str, limit: int = 200) -> str | None:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:limit]
    return None
