"""Loaders: bytes or a file → `LoadedDocument` (sections with their location, metadata).

`load_bytes` is what an upload calls, `load_path` what the CLI calls; both pick the format
with `detect_format`: the file's extension first (the most reliable hint a caller gives),
then the declared content type (browsers often send `application/octet-stream`), then the
content itself (`%PDF`, `<html`, UTF-8 text). Formats: `text`, `markdown`, `html`, `pdf`,
`code` (the language from the extension), `jsonl`. An image, an archive or an office file,
or bytes that are not text, raise `UnsupportedDocumentError` (415); a document with no text
raises `EmptyDocumentError` (400). Limits against hostile files are in `_common` and `pdf`.

The document id is stable: the caller's, else the source path normalised (`docs/a.md`), else
the sha256 of the text, so loading the same file again replaces it in a collection.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewise.errors import EmptyDocumentError, GatewayError, UnsupportedDocumentError
from gatewise.rag.loaders._common import MAX_CHARS, normalise_source
from gatewise.rag.loaders._language import detect_language
from gatewise.rag.loaders.code import LANGUAGES, load_code
from gatewise.rag.loaders.html import load_html
from gatewise.rag.loaders.jsonl import load_jsonl
from gatewise.rag.loaders.markdown import load_markdown
from gatewise.rag.loaders.pdf import MAX_PAGES, load_pdf
from gatewise.rag.loaders.text import load_text
from gatewise.rag.types import LoadedDocument

__all__ = ["FORMATS", "LANGUAGES", "MAX_BYTES", "MAX_CHARS", "MAX_PAGES", "LoadFailure",
           "detect_format", "detect_language", "find_files", "load_bytes", "load_path",
           "load_paths"]

FORMATS = ("text", "markdown", "html", "pdf", "code", "jsonl")
# The largest file `load_path` reads (uploads are capped by `rag.max_upload_bytes` first).
MAX_BYTES = 128 * 1024 * 1024

_EXTENSIONS: Mapping[str, str] = {
    ".txt": "text", ".text": "text", ".log": "text", ".rst": "text", ".csv": "text",
    ".tsv": "text", ".json": "text", ".xml": "text", ".tex": "text", ".adoc": "text",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown", ".mdown": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".pdf": "pdf", ".jsonl": "jsonl", ".ndjson": "jsonl",
}
_BINARY_NAMES = (
    "png jpg jpeg gif webp bmp tiff ico mp3 wav ogg flac mp4 mov avi mkv zip gz tgz bz2 xz 7z rar "
    "tar exe dll so dylib bin o a class jar whl pyc doc docx xls xlsx ppt pptx odt ods odp epub "
    "sqlite db woff woff2 ttf otf onnx gguf npy parquet")
_BINARY_EXTENSIONS = frozenset(f".{ext}" for ext in _BINARY_NAMES.split())
_CONTENT_TYPES: Mapping[str, str] = {
    "text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown",
    "text/html": "html", "application/xhtml+xml": "html", "application/pdf": "pdf",
    "application/jsonl": "jsonl", "application/x-ndjson": "jsonl",
    "application/x-jsonlines": "jsonl", "application/jsonlines": "jsonl",
    "text/x-python": "code", "text/x-script.python": "code", "application/x-python": "code",
    "text/javascript": "code", "application/javascript": "code", "text/x-go": "code",
    "text/x-rust": "code", "text/x-java": "code", "text/x-c": "code", "text/x-c++": "code",
    "text/x-shellscript": "code", "application/x-sh": "code",
}
_CONTENT_LANGUAGES: Mapping[str, str] = {
    "text/x-python": "python", "text/x-script.python": "python", "application/x-python": "python",
    "text/javascript": "javascript", "application/javascript": "javascript", "text/x-go": "go",
    "text/x-rust": "rust", "text/x-java": "java", "text/x-c": "c", "text/x-c++": "cpp",
    "text/x-shellscript": "shell", "application/x-sh": "shell",
}
_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/zip", "application/gzip",
                 "application/msword", "application/vnd.", "application/x-tar",
                 "application/x-7z", "application/x-rar")


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """A file `load_paths` could not load; `Ingestor.ingest` reports it as failed."""

    id: str
    reason: str
    error: GatewayError


def _suffix(filename: str | None) -> str:
    if not filename:
        return ""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return os.path.splitext(name)[1]


def detect_format(data: bytes | None = None, *, filename: str | None = None,
                  content_type: str | None = None) -> str:
    """One of `FORMATS`, or `UnsupportedDocumentError` for a type no loader reads."""
    suffix = _suffix(filename)
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if suffix in LANGUAGES:
        return "code"
    if suffix in _BINARY_EXTENSIONS:
        raise UnsupportedDocumentError(f"unsupported file type {suffix!r}")
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype in _CONTENT_TYPES:
        return _CONTENT_TYPES[ctype]
    if ctype.startswith(_BINARY_TYPES):
        raise UnsupportedDocumentError(f"unsupported content type {ctype!r}")
    if data is not None:
        head = data[:1024].lstrip()
        if head.startswith(b"%PDF"):
            return "pdf"
        if head[:15].lower().startswith((b"<!doctype html", b"<html")):
            return "html"
        if b"\x00" not in data[:8192]:
            try:
                data[:8192].decode("utf-8")
            except UnicodeDecodeError as exc:
                if exc.start < 8188:  # not just a character cut at the sample's end
                    raise UnsupportedDocumentError("unsupported content: not text") from None
            return "text"
    raise UnsupportedDocumentError(
        f"unsupported document type ({suffix or ctype or 'unknown'}); supported: "
        "text, Markdown, HTML, PDF, JSONL and source code")


def load_bytes(data: bytes, *, filename: str | None = None, content_type: str | None = None,
               document_id: str | None = None, metadata: Mapping[str, Any] | None = None,
               format: str | None = None) -> LoadedDocument:
    """Reads one document; `format` forces a loader (one of `FORMATS`), else it is detected.
    `filename` is the document's source (and its id when `document_id` is not given)."""
    fmt = format or detect_format(data, filename=filename, content_type=content_type)
    if fmt not in FORMATS:
        raise UnsupportedDocumentError(f"unknown document format {fmt!r}; one of {', '.join(FORMATS)}")
    if not data.strip():
        raise EmptyDocumentError(f"the document{f' {filename!r}' if filename else ''} is empty")
    kwargs: dict[str, Any] = {"source": filename, "document_id": document_id, "metadata": metadata}
    if fmt == "markdown":
        return load_markdown(data, **kwargs)
    if fmt == "html":
        return load_html(data, **kwargs)
    if fmt == "pdf":
        return load_pdf(data, **kwargs)
    if fmt == "jsonl":
        return load_jsonl(data, **kwargs)
    if fmt == "code":
        ctype = (content_type or "").split(";", 1)[0].strip().lower()
        language = LANGUAGES.get(_suffix(filename)) or _CONTENT_LANGUAGES.get(ctype) or "text"
        return load_code(data, language=language, **kwargs)
    return load_text(data, **kwargs)


def load_path(path: str | os.PathLike[str], *, document_id: str | None = None,
              metadata: Mapping[str, Any] | None = None,
              format: str | None = None) -> LoadedDocument:
    """Reads a file; its normalised path is its source and (by default) its id."""
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise UnsupportedDocumentError(
            f"{p.name} is {size:,} bytes; at most {MAX_BYTES:,} are read")
    return load_bytes(p.read_bytes(), filename=normalise_source(os.fspath(path)),
                      document_id=document_id, metadata=metadata, format=format)


def find_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files under `paths` (directories walked in sorted order, hidden entries and files of
    types no loader reads skipped; a file named directly is always yielded)."""
    for path in paths:
        p = Path(path)
        if not p.is_dir():
            yield p
            continue
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                             and d not in ("node_modules", "__pycache__"))
            for name in sorted(files):
                suffix = _suffix(name)
                if name.startswith(".") or not (suffix in _EXTENSIONS or suffix in LANGUAGES):
                    continue
                yield Path(root) / name


def load_paths(paths: Iterable[str | os.PathLike[str]], *,
               metadata: Mapping[str, Any] | None = None) -> Iterator[LoadedDocument | LoadFailure]:
    """Every file under `paths`, loaded; a file that cannot be loaded is yielded as a
    `LoadFailure` (what `Ingestor.ingest` reports), so one bad file stops nothing."""
    for path in find_files(paths):
        try:
            yield load_path(path, metadata=metadata)
        except GatewayError as exc:
            yield LoadFailure(normalise_source(os.fspath(path)), exc.message, exc)
        except OSError as exc:
            err = UnsupportedDocumentError(f"cannot read {path}: {exc.strerror or exc}")
            yield LoadFailure(normalise_source(os.fspath(path)), err.message, err)
