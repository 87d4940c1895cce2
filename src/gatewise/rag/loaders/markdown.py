"""Markdown: one prose section per heading (ATX `## x` and setext `x\\n===`), whose `path` is
the trail of headings above it ("Install", "Linux"), and fenced code blocks (``` or ~~~) as
sections of kind "code" under the same path. Each section keeps its source lines exactly
(the heading line included), so line ranges point into the file as written. A YAML front
matter block is not text: its `title:` names the document, otherwise the first `#` heading
does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gatewise.rag.loaders._common import Part, build_document, decode_text, first_line, trim_lines
from gatewise.rag.types import LoadedDocument, SectionKind

# Only the opening is matched by a regex: a lazy `(.*?)` before an optional closing `#`s run
# backtracks quadratically on a long line of spaces (a hostile heading).
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]|$)")
_CLOSING = re.compile(r"[ \t]#+$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([^`\s]*)")
_FRONT_TITLE = re.compile(r"^title:(.*)$", re.IGNORECASE)
_INLINE = re.compile(r"[*_`]|\[([^\[\]]*)\]\([^()]*\)")
# A heading longer than this is cut in the section path (a path is a label, not text).
MAX_HEADING = 200
_NOT_SETEXT_START = ("#", ">", "-", "*", "+", "|", "```", "~~~")


def _heading_text(raw: str) -> str:
    return _INLINE.sub(lambda m: m.group(1) or "", raw).strip()


class _Builder:
    """Collects lines into parts as the scanner moves through the file."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.lines: list[str] = []
        self.first = 1  # line number of self.lines[0]
        self.kind: SectionKind = "prose"
        self.path: tuple[str, ...] = ()
        self.code_language = ""

    def flush(self, next_line: int) -> None:
        trimmed = trim_lines(self.lines, self.first)
        if trimmed is not None:
            meta = {"code_language": self.code_language} if self.code_language else None
            self.parts.append(Part(trimmed[0], kind=self.kind, path=self.path,
                                   start_line=trimmed[1], end_line=trimmed[2], metadata=meta))
        self.lines, self.first, self.kind, self.code_language = [], next_line, "prose", ""


def _front_matter(lines: list[str]) -> tuple[int, str | None]:
    """(lines it takes, its title) for a leading `---` YAML block; (0, None) without one."""
    if not lines or lines[0].strip() != "---":
        return 0, None
    for end in range(1, min(len(lines), 200)):
        if lines[end].strip() in ("---", "..."):
            title = None
            for line in lines[1:end]:
                m = _FRONT_TITLE.match(line)
                if m:
                    title = m.group(1).strip().strip("'\"").strip() or None
                    break
            return end + 1, title
    return 0, None


def load_markdown(data: bytes, *, source: str | None, document_id: str | None,
                  metadata: Mapping[str, Any] | None) -> LoadedDocument:
    text = decode_text(data)
    lines = text.split("\n")
    skip, title = _front_matter(lines)
    b = _Builder()
    b.first = skip + 1
    stack: list[tuple[int, str]] = []  # (level, heading) of the current path
    first_heading: str | None = None
    first_h1: str | None = None
    fence = ""
    i = skip
    while i < len(lines):
        line = lines[i]
        number = i + 1
        if fence:  # inside a code block: only its closing fence matters
            b.lines.append(line)
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = ""
                b.flush(number + 1)
            i += 1
            continue
        m = _FENCE.match(line)
        if m:
            b.flush(number)
            fence, b.kind, b.code_language = m.group(1), "code", m.group(2)
            b.lines.append(line)
            i += 1
            continue
        level, heading, consumed = 0, "", 1
        m = _ATX.match(line)
        if m:
            level, heading = len(m.group(1)), line[m.end():].strip()
            heading = _CLOSING.sub("", " " + heading).strip() if heading.endswith("#") else heading
        elif (i + 1 < len(lines) and line.strip() and _SETEXT.match(lines[i + 1])
              and (not b.lines or not b.lines[-1].strip())
              and not line.lstrip().startswith(_NOT_SETEXT_START)):
            level = 1 if lines[i + 1].strip().startswith("=") else 2
            heading, consumed = line.strip(), 2
        if level:
            b.flush(number)
            heading = _heading_text(heading)[:MAX_HEADING]
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading))
            b.path = tuple(h for _, h in stack)
            if level == 1 and first_h1 is None:
                first_h1 = heading
            if first_heading is None:
                first_heading = heading
            b.lines.extend(lines[i:i + consumed])
            i += consumed
            continue
        b.lines.append(line)
        i += 1
    b.flush(len(lines) + 1)
    return build_document(b.parts, fmt="markdown", source=source, document_id=document_id,
                          title=title or first_h1 or first_heading or first_line(text), metadata=metadata)
