"""Checks on what the model wrote: toxicity/profanity, fenced code that must parse, and
groundedness against the context the caller supplied.

Each check is a small object with a `name` and `check(text, request) -> Finding | None`; it
is built once (word lists loaded, regexes compiled) and is pure afterwards. Findings never
quote the answer: they name the check and give counts, positions and scores.
"""

from __future__ import annotations

import ast
import codecs
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal, Protocol

from gatewise.types.messages import SystemMessage, ToolMessage, UserMessage, text_of
from gatewise.types.requests import ChatRequest

Action = Literal["off", "flag", "block", "retry"]


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    reason: str
    score: float | None = None


class OutputCheck(Protocol):
    name: str

    def check(self, text: str, request: ChatRequest) -> Finding | None: ...


# -- toxicity / profanity ------------------------------------------------------------------

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                       "@": "a", "$": "s", "!": "i", "|": "i", "+": "t", "€": "e"})
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")
_SPACED = re.compile(r"\b(?:\w[ .*_-]){2,}\w\b")
_EDGE = "\"'()[]{}<>.,;:?!…-"
_SEP = re.compile(r"[ .*_-]")


def load_word_list(name: str = "profanity.rot13.txt") -> frozenset[str]:
    """The shipped list, decoded (it is stored ROT13'd: see the file's header)."""
    text = resources.files("gatewise.guardrails").joinpath("data", name).read_text("utf-8")
    return frozenset(codecs.decode(line.strip(), "rot13").lower() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


class ToxicityCheck:
    """Whole-word matches against the word list after leetspeak normalisation (`sh1t`, `$hit`,
    `f*ck` with a masked vowel is not guessed at) and with spaced-out letters joined
    (`s h i t`). Whole words only, so `Scunthorpe` or `classic` never match."""

    name = "toxicity"

    def __init__(self, words: Iterable[str] | None = None, *, extra: Iterable[str] = (),
                 allow: Iterable[str] = ()) -> None:
        base = load_word_list() if words is None else frozenset(w.lower() for w in words)
        self.words = (base | {w.lower() for w in extra}) - {w.lower() for w in allow}

    def matches(self, text: str) -> list[str]:
        found: list[str] = []
        words = self.words
        for raw in text.lower().split():  # whitespace-separated tokens, lower-cased at once
            # Leet digits/symbols become letters only inside a token that also has letters,
            # so "a $5 fee" stays clean while "$h1t" does not.
            tok = raw.strip(_EDGE)
            if tok.isalpha():  # most tokens: one plain word, nothing to normalise (and fast:
                if tok in words:  # the quality stage runs this on every answer)
                    found.append(tok)
                continue
            if any(c.isalpha() for c in tok):
                tok = tok.translate(_LEET)
            for w in _WORD.findall(tok):
                if w in words:
                    found.append(w)
        for m in _SPACED.finditer(text):
            joined = _SEP.sub("", m.group(0)).lower().translate(_LEET)
            if joined in words:
                found.append(joined)
        return found

    def check(self, text: str, request: ChatRequest) -> Finding | None:
        hits = self.matches(text)
        if not hits:
            return None
        return Finding(self.name, f"{len(hits)} profane or abusive word(s) in the answer",
                       float(len(hits)))


# -- code blocks ---------------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$",
                    re.DOTALL | re.MULTILINE)
_PYTHON = frozenset({"python", "py", "python3"})
_JSON = frozenset({"json"})


class CodeCheck:
    """Fenced ```python blocks must parse with `ast.parse`, ```json blocks with `json.loads`.
    Other languages are not judged (no parser shipped for them)."""

    name = "code"

    def errors(self, text: str) -> list[str]:
        out: list[str] = []
        for i, m in enumerate(_FENCE.finditer(text), 1):
            lang, body = m.group(1).lower(), m.group(2)
            if lang in _PYTHON:
                try:
                    ast.parse(body)
                except SyntaxError as exc:
                    out.append(f"python block {i} does not parse (line {exc.lineno}: {exc.msg})")
            elif lang in _JSON:
                try:
                    json.loads(body)
                except json.JSONDecodeError as exc:
                    out.append(f"json block {i} does not parse (line {exc.lineno}: {exc.msg})")
        return out

    def check(self, text: str, request: ChatRequest) -> Finding | None:
        errs = self.errors(text)
        return Finding(self.name, "; ".join(errs), float(len(errs))) if errs else None


# -- groundedness --------------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_TERM = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
_STOP = frozenset("""\
a an the and or but if then so of to in on at by for with from as is are was
were be been being it its this that these those there here he she they we you i me my our your
their his her them us do does did done have has had not no yes can could would should will shall
may might must also just than very more most such into over under about after before again
which who whom what when where why how all any each both few other some only own same too out up
down off""".split())  # noqa: SIM905
CONTEXT_NAMES = frozenset({"context", "retrieved", "retrieval", "rag", "document", "documents"})


def _terms(text: str) -> list[str]:
    out = []
    for t in _TERM.findall(text.lower()):
        if t in _STOP:
            continue
        if len(t) > 4 and t.endswith("s") and not t.endswith("ss"):
            t = t[:-1]
        out.append(t)
    return out


def context_of(request: ChatRequest, metadata_key: str = "context") -> list[str]:
    """What the answer must be grounded in: tool results, system/user messages named as
    retrieved context (`name: "context"`), and `metadata[metadata_key]`."""
    parts: list[str] = []
    for m in request.messages:
        named = isinstance(m, SystemMessage | UserMessage) and (m.name or "").lower() in CONTEXT_NAMES
        if isinstance(m, ToolMessage) or named:
            parts.append(text_of(m.content))
    if request.metadata and request.metadata.get(metadata_key):
        parts.append(request.metadata[metadata_key])
    return parts


class GroundednessCheck:
    """Sentence-level support: a sentence of the answer is supported when most of its content
    words (`support` fraction, stopwords dropped, plurals folded) or a word pair of it appear in
    the context; the score is the share of supported sentences, flagged below `threshold`.
    Without any context there is nothing to judge against, so no finding."""

    name = "groundedness"

    def __init__(self, threshold: float = 0.5, *, context: Sequence[str] = (),
                 support: float = 0.6, min_terms: int = 3, metadata_key: str = "context") -> None:
        self.threshold = threshold
        self.context = list(context)
        self.support = support
        self.min_terms = min_terms
        self.metadata_key = metadata_key

    def score(self, answer: str, context: Sequence[str]) -> tuple[float, int, int] | None:
        """(score, supported sentences, judged sentences), or None when nothing is judged."""
        return self.score_indexed(answer, *self.index(context))

    @staticmethod
    def index(context: Sequence[str]) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
        """The context's content words and word pairs: what `score_indexed` compares with (a
        caller scoring many answers against one context builds this once)."""
        ctx_terms: set[str] = set()
        ctx_pairs: set[tuple[str, str]] = set()
        for c in context:
            terms = _terms(c)
            ctx_terms.update(terms)
            ctx_pairs.update(itertools.pairwise(terms))
        return frozenset(ctx_terms), frozenset(ctx_pairs)

    def score_indexed(self, answer: str, ctx_terms: frozenset[str],
                      ctx_pairs: frozenset[tuple[str, str]]) -> tuple[float, int, int] | None:
        """`score` against a context already indexed (`index`)."""
        if not ctx_terms:
            return None
        judged = supported = 0
        for sentence in _SENTENCE.split(answer):
            terms = _terms(sentence)
            if len(terms) < self.min_terms:
                continue
            judged += 1
            unigram = sum(t in ctx_terms for t in terms) / len(terms)
            pairs = list(itertools.pairwise(terms))
            bigram = sum(p in ctx_pairs for p in pairs) / len(pairs) if pairs else 0.0
            if unigram >= self.support or (unigram >= self.support / 2 and bigram >= 0.5):
                supported += 1
        if judged == 0:
            return None
        return supported / judged, supported, judged

    def check(self, text: str, request: ChatRequest) -> Finding | None:
        context = [*self.context, *context_of(request, self.metadata_key)]
        got = self.score(text, context)
        if got is None:
            return None
        score, ok, judged = got
        if score >= self.threshold:
            return None
        return Finding(self.name, f"{judged - ok} of {judged} sentences are not supported by the "
                       f"context (score {score:.2f} < {self.threshold:.2f})", score)
