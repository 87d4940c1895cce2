"""Numbered sources in, resolved citations out.

The prompt lists the retrieved chunks as sources `[1]`..`[n]`, each headed by what a reader
needs to cite it (title, section, page or lines). The model cites with markers; this module
maps them back to chunks:

- grammar: `[n]`, `[n, m]` (`;` too), `[n][m]`, `[n-m]` (a range; an en dash too; at most 20 wide),
  optionally spelled `[source n]` / `[ref n]`; numbers have one to three digits (`[2024]` is a
  year, not a marker). Text inside backtick code (inline or fenced) is never a marker:
  `arr[1]` in a code block stays as written.
- a marker whose numbers all name a source stays exactly as written; one naming some sources
  and some nothing is rewritten to the valid ones (`[1, 9]` → `[1]`); one naming nothing is
  removed, with the spaces before it. Every number that named nothing counts in `dropped`.
- output: `Citation`s in order of first use, each with the spans of its markers in the
  cleaned text; `citations_json` is the response's `citations` list, `annotations` OpenAI's
  `message.annotations` (`url_citation` with `start_index`/`end_index`, end exclusive, the
  marker's own characters, as web-search citations mark their link text).

One incremental scanner (`MarkerRewriter`) does both the whole-text `resolve` and the
streaming `CitationStreamer`, so a stream and a JSON answer are cleaned identically. The
streamer holds text back only from a `[` (and the spaces before it) until the marker closes or
can no longer be one, so an invalid marker never reaches the client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote

import msgspec

from gatewise.rag.types import Hit, section_label
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice, Delta

__all__ = ["NOT_FOUND", "Citation", "CitationStreamer", "MarkerRewriter", "Resolved", "Source",
           "Supports", "annotations_json", "attribute", "citations_json", "resolve",
           "source_label", "sources_block", "strip_spans"]

# What an answer says when the sources do not hold it (the built-in template asks the model
# for these exact words, and the gateway answers them itself when nothing was retrieved).
NOT_FOUND = "not found in the knowledge base"

SNIPPET_CHARS = 240
_MAX_HELD = 48          # a marker candidate longer than this is text
_MAX_RANGE = 20         # `[1-3]` is a range of sources; `[1-100]` is prose
_WORDS = ("sources", "source", "refs", "ref")
_MARKER = re.compile(
    r"\[\s*(?:(?:sources?|refs?)\s*)?(\d{1,3}(?:\s*[-\u2013]\s*\d{1,3})?"
    r"(?:\s*[,;]\s*(?:(?:sources?|refs?)\s*)?\d{1,3}(?:\s*[-\u2013]\s*\d{1,3})?)*)\s*\]",
    re.IGNORECASE)
_PART = re.compile(r"(\d{1,3})(?:\s*[-\u2013]\s*(\d{1,3}))?")
_HOLDABLE_SPACE = frozenset(" \t")
_MARKER_CHARS = frozenset("0123456789 ,;-\u2013\t")


@dataclass(frozen=True, slots=True)
class Source:
    """One numbered source of the prompt: the hit, and a note the prompt shows with it (an
    indirect-injection warning when `rag.scan_injection` is `flag`)."""

    hit: Hit
    note: str | None = None


def _meta(hit: Hit, key: str) -> Any:
    return hit.chunk.metadata.get(key)


def _title(hit: Hit) -> str:
    title = _meta(hit, "title")
    return str(title) if title else hit.chunk.document_id


def source_label(hit: Hit) -> str:
    """`Title > Section (page 3)` / `(lines 10-24)`: what the model sees to cite a source."""
    label = _title(hit)
    section = _meta(hit, "section")
    if section:
        label += f" > {section}"
    page = _meta(hit, "page")
    start, end = _meta(hit, "start_line"), _meta(hit, "end_line")
    if page is not None:
        label += f" (page {page})"
    elif start is not None:
        label += f" (lines {start}-{end if end is not None else start})"
    return label


def sources_block(sources: Sequence[Source]) -> str:
    """The numbered sources as the prompt shows them, one blank line apart."""
    parts = []
    for i, s in enumerate(sources, 1):
        head = f"[{i}] {source_label(s.hit)}"
        if s.note:
            head += f"\n({s.note})"
        parts.append(f"{head}\n{s.hit.chunk.text.strip()}")
    return "\n\n".join(parts)


def source_url(hit: Hit, collection: str) -> str:
    """The document's own address when it has one (`url`, or an http(s) `source`), else
    `gatewise://collection/<collection>/<document_id>#<ordinal>`."""
    for key in ("url", "source"):
        value = _meta(hit, key)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return (f"gatewise://collection/{quote(collection, safe='')}/"
            f"{quote(hit.chunk.document_id, safe='/')}#{hit.chunk.ordinal}")


@dataclass(slots=True)
class Citation:
    """Source `index` (its number in the prompt) as the answer cited it: the hit, and the
    spans (start, end exclusive) of its markers in the cleaned text. `inferred`: the model
    wrote no marker; the gateway attributed the sentences at `spans` to this source
    (`attribute`)."""

    index: int
    hit: Hit
    url: str
    spans: list[tuple[int, int]] = field(default_factory=list)
    inferred: bool = False

    def to_json(self, collection: str = "") -> dict[str, Any]:
        c = self.hit.chunk
        meta = c.metadata
        section = meta.get("section")
        if section is None and meta.get("path"):
            section = section_label(meta["path"])
        text = c.text.strip()
        if len(text) > SNIPPET_CHARS:
            text = text[:SNIPPET_CHARS].rstrip() + "\u2026"
        return {"index": self.index, "chunk_id": c.id, "document_id": c.document_id,
                "collection": collection or None, "source": meta.get("source"),
                "title": _title(self.hit), "section": section or None, "page": meta.get("page"),
                "start_line": meta.get("start_line"), "end_line": meta.get("end_line"),
                "char_start": meta.get("char_start"), "char_end": meta.get("char_end"),
                "score": self.hit.score, "url": self.url, "text": text,
                "inferred": self.inferred}


def citations_json(citations: Sequence[Citation], collection: str = "") -> list[dict[str, Any]]:
    return [c.to_json(collection) for c in citations]


def annotations_json(citations: Sequence[Citation]) -> list[dict[str, Any]]:
    """OpenAI's `message.annotations`: one `url_citation` per marker and source, in text order."""
    out = [(start, end, c) for c in citations for start, end in c.spans]
    out.sort(key=lambda t: (t[0], t[2].index))
    return [{"type": "url_citation",
             "url_citation": {"start_index": start, "end_index": end, "url": c.url,
                              "title": source_label(c.hit)}}
            for start, end, c in out]


def strip_spans(text: str, citations: Sequence[Citation]) -> str:
    """`text` without its citation markers (what a groundedness check should read)."""
    spans = sorted({s for c in citations for s in c.spans})
    out, pos = [], 0
    for start, end in spans:
        if start >= pos:
            out.append(text[pos:start])
            pos = end
    out.append(text[pos:])
    return "".join(out)


_SENTENCE_SPAN = re.compile(r"[^\s][^\n]*?(?:[.!?](?=\s|$)|(?=\n)|$)")

# Whether a sentence is supported by one source's text (the groundedness check's rule).
Supports = Callable[[str, str], bool]


def attribute(text: str, hits: Sequence[Hit], supports: Supports, *,
              collection: str = "") -> list[Citation]:
    """Citations for an answer that has no markers: each sentence goes to the first source
    (in prompt order) that supports it, its span annotated, the citation marked `inferred`.
    Small models (SmolLM2-135M) answer from the sources but do not write markers; the
    reader still learns where each statement came from, and that the gateway, not the
    model, made the link."""
    found: dict[int, Citation] = {}
    for m in _SENTENCE_SPAN.finditer(text):
        sentence = m.group(0).strip()
        if not sentence:
            continue
        for n, hit in enumerate(hits, 1):
            if supports(sentence, hit.chunk.text):
                c = found.get(n)
                if c is None:
                    c = found[n] = Citation(n, hit, source_url(hit, collection), inferred=True)
                c.spans.append((m.start(), m.start() + len(sentence)))
                break
    return sorted(found.values(), key=lambda c: c.spans[0])


def _numbers(body: str) -> list[int] | None:
    """The source numbers a marker's inside names (ranges expanded, duplicates dropped), or
    None when a range makes it prose rather than a citation."""
    out: list[int] = []
    for m in _PART.finditer(body):
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo or hi - lo > _MAX_RANGE:
            return None
        out.extend(n for n in range(lo, hi + 1) if n not in out)
    return out


def _word_prefix(letters: str) -> bool:
    low = letters.lower()
    return any(w.startswith(low) for w in _WORDS)


class MarkerRewriter:
    """Feeds text through the marker grammar incrementally: `feed` returns what is safe to
    show now, `flush` what was still held at the end. Positions count the cleaned text."""

    def __init__(self, sources: Sequence[Hit], collection: str = "") -> None:
        self.hits = list(sources)
        self.collection = collection
        self.citations: dict[int, Citation] = {}
        self.dropped = 0
        self.length = 0           # characters emitted so far
        self._held = ""           # spaces, then possibly `[` and a marker's beginning
        self._bracket = -1        # index of `[` in `_held`, -1 while only spaces are held
        self._ticks = 0           # length of the backtick run being read
        self._inline = False
        self._fence = False

    @property
    def cited(self) -> list[Citation]:
        return list(self.citations.values())

    def feed(self, text: str) -> str:
        out: list[str] = []
        for ch in text:
            self._step(ch, out)
        emitted = "".join(out)
        self.length += len(emitted)
        return emitted

    def flush(self) -> str:
        self._end_ticks()
        emitted, self._held, self._bracket = self._held, "", -1
        self.length += len(emitted)
        return emitted

    # -- the scanner -----------------------------------------------------------------------
    def _end_ticks(self) -> None:
        run, self._ticks = self._ticks, 0
        if run >= 3 and not self._inline:
            self._fence = not self._fence
        elif run and not self._fence:
            self._inline = not self._inline

    def _release(self, out: list[str]) -> None:
        if self._held:
            out.append(self._held)
            self._held, self._bracket = "", -1

    def _step(self, ch: str, out: list[str]) -> None:
        if ch == "`":
            self._release(out)
            self._ticks += 1
            out.append(ch)
            return
        if self._ticks:
            self._end_ticks()
        if self._inline or self._fence:
            out.append(ch)
            return
        if self._bracket < 0:
            if ch in _HOLDABLE_SPACE:
                self._held += ch
            elif ch == "[":
                self._bracket = len(self._held)
                self._held += ch
            else:
                self._release(out)
                out.append(ch)
            return
        if ch == "[":  # `[[1]`: the first bracket was text, the second may open a marker
            self._release(out)
            self._bracket, self._held = 0, ch
            return
        self._held += ch
        body = self._held[self._bracket:]
        if ch == "]":
            self._close(out)
        elif len(body) > _MAX_HELD or not self._could_grow(body):
            self._release(out)

    @staticmethod
    def _could_grow(body: str) -> bool:
        letters = ""
        for c in body[1:]:
            if c.isalpha():
                letters += c
                if not _word_prefix(letters):
                    return False
            elif c in _MARKER_CHARS:
                letters = ""
            else:
                return False
        return True

    def _close(self, out: list[str]) -> None:
        spaces, marker = self._held[:self._bracket], self._held[self._bracket:]
        m = _MARKER.fullmatch(marker)
        numbers = _numbers(m.group(1)) if m is not None else None
        if not numbers:
            self._release(out)
            return
        self._held, self._bracket = "", -1
        valid = [n for n in numbers if 1 <= n <= len(self.hits)]
        self.dropped += len(numbers) - len(valid)
        if not valid:
            return  # the marker and the spaces before it go
        if len(valid) < len(numbers):
            marker = "[" + ", ".join(str(n) for n in valid) + "]"
        start = self.length + sum(len(s) for s in out) + len(spaces)
        out.append(spaces + marker)
        for n in valid:
            c = self.citations.get(n)
            if c is None:
                hit = self.hits[n - 1]
                c = self.citations[n] = Citation(n, hit, source_url(hit, self.collection))
            c.spans.append((start, start + len(marker)))


class Resolved(NamedTuple):
    text: str
    citations: list[Citation]
    dropped: int


def resolve(text: str, hits: Sequence[Hit], *, collection: str = "") -> Resolved:
    """`text` with markers pointing at nothing removed, the citations (first use first) and
    how many cited numbers named no source."""
    rw = MarkerRewriter(hits, collection)
    clean = rw.feed(text) + rw.flush()
    return Resolved(clean, rw.cited, rw.dropped)


# What the final chunk carries besides citations: called with the whole cleaned answer of
# choice 0 and its citations, returns the response's `rag` object.
Finalize = Callable[[str, list[Citation], int], Mapping[str, Any]]


class CitationStreamer:
    """A `ChunkTransform` (see `pipeline.stream`): resolves markers in every choice's text as
    it streams, and puts `annotations` on each choice's finishing delta, and `citations` (and
    `rag`, from `finalize`) on the last finishing chunk."""

    def __init__(self, hits: Sequence[Hit], *, collection: str = "",
                 finalize: Finalize | None = None, supports: Supports | None = None) -> None:
        """`supports`: attribute a choice that ended without any marker (`attribute`)."""
        self.hits = list(hits)
        self.collection = collection
        self.finalize = finalize
        self.supports = supports
        self.inferred: dict[int, list[Citation]] = {}
        self.rewriters: dict[int, MarkerRewriter] = {}
        self.texts: dict[int, list[str]] = {}
        self._open: set[int] = set()
        self._template: ChatCompletionChunk | None = None
        self._done = False

    def _rewriter(self, index: int) -> MarkerRewriter:
        rw = self.rewriters.get(index)
        if rw is None:
            rw = self.rewriters[index] = MarkerRewriter(self.hits, self.collection)
            self.texts[index] = []
            self._open.add(index)
        return rw

    def _emit(self, index: int, text: str) -> str:
        if text:
            self.texts[index].append(text)
        return text

    def apply(self, chunk: ChatCompletionChunk) -> list[ChatCompletionChunk]:
        if self._template is None:
            self._template = chunk
        out: list[ChatCompletionChunk] = []
        choices: list[ChunkChoice] = []
        finishing = False
        for ch in chunk.choices:
            rw = self._rewriter(ch.index)
            d = ch.delta
            changes: dict[str, Any] = {}
            if d.content:
                changes["content"] = self._emit(ch.index, rw.feed(d.content))
            if ch.finish_reason is not None:
                rest = self._emit(ch.index, rw.flush())
                if rest and "content" in changes:
                    changes["content"] += rest
                elif rest:  # a finishing delta without text: the rest goes just before it
                    out.append(self._text_chunk(chunk, ch.index, rest))
                changes["annotations"] = annotations_json(self._cited(ch.index)) or None
                self._open.discard(ch.index)
                finishing = True
            choices.append(msgspec.structs.replace(ch, delta=msgspec.structs.replace(d, **changes))
                           if changes else ch)
        new = msgspec.structs.replace(chunk, choices=choices)
        if finishing and not self._open:
            new = self._decorate(new)
        out.append(new)
        return out

    def finish(self) -> list[ChatCompletionChunk]:
        """The source ended without finishing some choice: release what they still hold."""
        if self._done or self._template is None:
            return []
        out: list[ChatCompletionChunk] = []
        for index in sorted(self._open):
            rest = self._emit(index, self.rewriters[index].flush())
            if rest:
                out.append(self._text_chunk(self._template, index, rest))
        self._open.clear()
        if out:
            out[-1] = self._decorate(out[-1])
        return out

    def _text_chunk(self, like: ChatCompletionChunk, index: int, text: str) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=like.id, created=like.created, model=like.model,
                                   system_fingerprint=like.system_fingerprint,
                                   choices=[ChunkChoice(index=index, delta=Delta(content=text))])

    def _cited(self, index: int) -> list[Citation]:
        """A finished choice's citations: its markers', else the inferred ones."""
        cited = self.rewriters[index].cited
        if cited or self.supports is None or not self.hits:
            return cited
        if index not in self.inferred:
            text = "".join(self.texts.get(index, []))
            self.inferred[index] = ([] if NOT_FOUND in text.lower() else
                                    attribute(text, self.hits, self.supports,
                                              collection=self.collection))
        return self.inferred[index]

    def citations(self) -> list[Citation]:
        """Every choice's citations, each source once, first use first."""
        seen: dict[int, Citation] = {}
        for index in sorted(self.rewriters):
            for c in self.rewriters[index].cited or self.inferred.get(index, []):
                seen.setdefault(c.index, c)
        return list(seen.values())

    def _decorate(self, chunk: ChatCompletionChunk) -> ChatCompletionChunk:
        self._done = True
        cited = self.citations()
        rag: Any = msgspec.UNSET
        if self.finalize is not None:
            first = min(self.rewriters) if self.rewriters else 0
            rw = self.rewriters.get(first)
            dropped = sum(r.dropped for r in self.rewriters.values())
            rag = dict(self.finalize("".join(self.texts.get(first, [])),
                                     self._cited(first) if rw else [], dropped))
        return msgspec.structs.replace(chunk, citations=citations_json(cited, self.collection),
                                       rag=rag)
