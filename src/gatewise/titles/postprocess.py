"""From what a model wrote to a title: one line, no surrounding quotes, no label, no trailing
period, at most `max_length` characters cut on a word boundary.

Models asked for "the title only" still answer `"Add SSO login."`, `Title: Add SSO login`,
`**Add SSO login**` or a title followed by an explanation on the next lines; the contract
promises the caller a bare title, so the cleaning happens here and not in every client.

Streaming: `StreamCleaner` cleans the text received so far up to its last complete word and
hands out only what extends what it already handed out, so the deltas a client appends spell
the final title (the last frame carries the whole title too, which a client shows in the end:
in the rare case a later word changes an earlier cut, that frame is the truth).
"""

from __future__ import annotations

import re

# Quotes and emphasis marks a model wraps a title in; stripped from both ends.
_WRAPPERS = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u201a*_#"  # and curly quotes
# A label in front of the title ("Title:", "Epic title -", "Suggested title:").
_LABEL = re.compile(r"^(?:(?:suggested|proposed|epic|new)\s+)?title\s*[:\-\u2013\u2014]\s*", re.I)
_BARE_LABEL = re.compile(r"^(?:(?:suggested|proposed|epic|new)\s+)?title\Z", re.I)
_SPACES = re.compile(r"\s+")
# Words a title does not end on once it was cut short.
# ("in", "on", "up" stay: "Sign in", "Log on", "Set up" end titles well.)
_DANGLING = frozenset(("a", "an", "the", "and", "or", "of", "for", "to", "with", "from",
                       "into", "via", "by"))
# What may not end a title: a period (not an ellipsis written as a word), a dangling comma,
# colon, semicolon or dash left over after a cut.
_TAIL = " \t.,;:-\u2013\u2014"  # and the en and em dashes


def first_line(text: str) -> str:
    """The first line with text on it (a model's explanation below the title is dropped)."""
    for line in text.splitlines():
        if line.strip(" \t" + _WRAPPERS):
            return line
    return ""


def clean_title(text: str, max_length: int) -> str:
    """The title in `text` (see the module docstring); "" when there is none."""
    line = first_line(text).strip().strip(_WRAPPERS).strip()
    line = _LABEL.sub("", line)
    line = _SPACES.sub(" ", line).strip().strip(_WRAPPERS).strip()
    line = line.rstrip(_TAIL).rstrip(_WRAPPERS).rstrip(_TAIL)
    return truncate(line, max_length)


def truncate(title: str, max_length: int) -> str:
    """At most `max_length` characters, cut at the last space that fits (a single word longer
    than that is cut inside it), without a dangling comma, dash or period."""
    if len(title) <= max_length:
        return title
    cut = title.rfind(" ", 0, max_length + 1)
    head = title[:cut] if cut > 0 else title[:max_length]
    words = head.rstrip(_TAIL).rstrip(_WRAPPERS).rstrip(_TAIL).split(" ")
    # A cut that leaves "… member of the" reads as a mistake: its dangling small words go.
    while len(words) > 1 and words[-1].lower() in _DANGLING:
        words.pop()
    return " ".join(words).rstrip(_TAIL) or title[:max_length]


class StreamCleaner:
    """Feeds raw deltas in, gives title deltas out (see the module docstring)."""

    __slots__ = ("_done", "emitted", "max_length", "raw")

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self.raw = ""
        self.emitted = ""
        self._done = False  # the first line is over: later text cannot change the title

    def feed(self, delta: str) -> str:
        """The text to append for this raw delta ("" while a word is still incomplete)."""
        if self._done or not delta:
            return ""
        self.raw += delta
        text = self.raw.lstrip()
        end = -1
        for sep in ("\n", "\r"):
            at = text.find(sep)
            if at > 0:
                end = at if end < 0 else min(end, at)
        if end > 0:
            self._done = True
            return self._extend(clean_title(text[:end], self.max_length))
        # Only complete words: the last one may still grow (or be a label, or end in a period).
        space = max(text.rfind(" "), text.rfind("\t"))
        if space <= 0:
            return ""
        candidate = clean_title(text[:space], self.max_length)
        if _BARE_LABEL.match(candidate):  # "Title - …": a label whose separator is to come
            return ""
        return self._extend(candidate)

    def finish(self) -> str:
        """The rest of the title once the stream ended; `title` is then the final title."""
        return self._extend(clean_title(self.raw, self.max_length))

    @property
    def title(self) -> str:
        return clean_title(self.raw, self.max_length)

    def _extend(self, candidate: str) -> str:
        if candidate.startswith(self.emitted) and len(candidate) > len(self.emitted):
            delta = candidate[len(self.emitted):]
            self.emitted = candidate
            return delta
        return ""
