"""HTML: the visible text, in sections by heading (`h1` to `h6`, with the heading trail as the
section path) and `pre` blocks as code sections; titled by `<title>`, else the first `h1`.

What a reader never sees is left out: `script`, `style`, `nav`, `noscript`, `template`,
`svg`, `iframe` and the rest of `<head>`. The standard library's `html.parser` does the
parsing: it is event-driven and keeps no element tree, so a page nested a hundred thousand
levels deep costs a counter, not a stack (nothing here recurses). Block elements become line
breaks, runs of whitespace inside a line one space. Section line ranges are the source lines
the section spans in the HTML file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

from gatewise.rag.loaders._common import Part, build_document, decode_text
from gatewise.rag.loaders.markdown import MAX_HEADING
from gatewise.rag.types import LoadedDocument

_SKIP = frozenset({"script", "style", "nav", "noscript", "template", "svg", "iframe", "object",
                   "canvas", "head"})
_BLOCK = frozenset({"p", "div", "br", "li", "ul", "ol", "table", "tr", "section", "article",
                    "header", "footer", "main", "blockquote", "dl", "dt", "dd", "figure",
                    "figcaption", "hr", "form", "address", "aside", "details", "summary",
                    "caption", "thead", "tbody", "body", "html"})
_CELL = frozenset({"td", "th"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n\s*")


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[Part] = []
        self.buffer: list[str] = []
        self.start_line = 1
        self.skip = 0          # open skipped elements (their text is dropped)
        self.pre = 0           # open <pre> elements (whitespace kept)
        self.heading = 0       # level of the open heading, 0 outside one
        self.heading_text: list[str] = []
        self.in_title = False
        self.title: list[str] = []
        self.first_h1: str | None = None
        self.stack: list[tuple[int, str]] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(h for _, h in self.stack)

    def flush(self, *, code: bool = False) -> None:
        raw = "".join(self.buffer)
        if code:
            text = raw.strip("\n").rstrip()
        else:
            lines = (_SPACES.sub(" ", line).strip() for line in raw.split("\n"))
            text = _BLANKS.sub("\n\n", "\n".join(lines)).strip()
        end_line = self.getpos()[0]
        if text:
            self.parts.append(Part(text, kind="code" if code else "prose", path=self.path,
                                   start_line=self.start_line, end_line=end_line))
        self.buffer = []
        self.start_line = end_line

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _SKIP:
            self.skip += 1
            return
        if tag == "body":  # `</head>` may be left out; the body is visible whatever came first
            self.skip = 0
        if self.skip:
            return
        if tag in _HEADINGS and not self.pre:
            self.flush()
            self.heading, self.heading_text = _HEADINGS[tag], []
        elif tag == "pre":
            if not self.pre:
                self.flush()
            self.pre += 1
        elif tag in _BLOCK:
            self.buffer.append("\n")
        elif tag in _CELL:
            self.buffer.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag in _HEADINGS and self.heading:
            text = _SPACES.sub(" ", "".join(self.heading_text)).strip()[:MAX_HEADING]
            level, self.heading = self.heading, 0
            if text:
                while self.stack and self.stack[-1][0] >= level:
                    self.stack.pop()
                self.stack.append((level, text))
                if level == 1 and self.first_h1 is None:
                    self.first_h1 = text
                self.buffer.append(text + "\n")
        elif tag == "pre" and self.pre:
            self.pre -= 1
            if not self.pre:
                self.flush(code=True)
        elif tag in _BLOCK:
            self.buffer.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if self.skip:
            return
        if self.heading:
            self.heading_text.append(data.replace("\n", " "))
        elif self.pre:
            self.buffer.append(data)
        else:
            self.buffer.append(data.replace("\n", " "))


def load_html(data: bytes, *, source: str | None, document_id: str | None,
              metadata: Mapping[str, Any] | None) -> LoadedDocument:
    parser = _Extractor()
    parser.feed(decode_text(data))
    parser.close()
    parser.flush(code=bool(parser.pre))
    title = _SPACES.sub(" ", "".join(parser.title)).strip() or parser.first_h1
    return build_document(parser.parts, fmt="html", source=source, document_id=document_id,
                          title=title, metadata=metadata)
