"""BM25 for one collection's per-process index: a `bm25s` base that is rebuilt now and then,
plus a small delta scored here.

bm25s scores a query against 100,000 documents in well under a millisecond (a sparse
matrix of precomputed term scores), but it cannot add a document to an index it has built.
Ingestion adds documents a few at a time, so:

- documents added since the last build sit in a *delta*: an inverted list scored here with
  the same Lucene BM25 formula and the base's statistics merged with the delta's (so scores
  from the two halves compare);
- documents removed from the base are masked (their score zeroed), never searched;
- when the delta passes `max(1000, 10 %)` of the base or a fifth of the base is masked, the
  base is rebuilt from the token ids every document keeps (in a worker thread for large
  collections: the old base plus the delta answer until the new one is swapped in).

Tokens are Unicode-aware (`tokenize`): case-folded, split on non-word characters and on
underscores, CJK runs as characters plus their bigrams (Chinese and Japanese write no
spaces), a few English function words dropped (they match every document and only cost
time), and a code written with a hyphen (`E-412`, `ISO-8601`, `v2-beta`) also kept whole
(`e412`), so `E412` finds it and it outranks documents that merely contain an `e`.
No stemming: it would need a stemmer package and a language guess per chunk.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from gatewise.rag.filters import KeyFilter

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_WORD = re.compile(r"[^\W_]+")
_CJK_RUN = re.compile(f"([{_CJK}]+)")
_STOP = frozenset(["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has",
                   "have", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this",
                   "to", "was", "were", "will", "with"])
# A code joined by hyphens, letters and digits both present: E-412, ISO-8601, X-2-B.
_CODE = re.compile(r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[^\W\d_])[^\W_]+(?:-[^\W_]+)+(?![\w-])")
K1, B = 1.5, 0.75


def tokenize(text: str) -> list[str]:
    folded = text.casefold()
    out: list[str] = []
    if "-" in folded:
        out.extend(code.replace("-", "") for code in _CODE.findall(folded))
    for word in _WORD.findall(folded):
        if word.isascii():
            if word not in _STOP:
                out.append(word)
            continue
        for part in _CJK_RUN.split(word):
            if not part:
                continue
            if _CJK_RUN.fullmatch(part):
                out.extend(part)
                out.extend(part[i:i + 2] for i in range(len(part) - 1))
            else:
                out.append(part)
    return out


def function_words() -> frozenset[str]:
    """Words that say nothing about a topic ("what", "how", "le", "der", "的"), in every
    language whose list bm25s ships (NLTK's stopword lists and a Chinese one), case-folded.
    Built once by its holder (`RagMiddleware`), not per call; without bm25s, the short
    English list `tokenize` already drops."""
    try:
        from bm25s import stopwords
    except ImportError:
        return _STOP
    words = set(_STOP)
    for name in dir(stopwords):
        if name.startswith("STOPWORDS_"):
            words.update(w.casefold() for w in getattr(stopwords, name))
    return frozenset(words)


def informative_terms(text: str, function: frozenset[str]) -> frozenset[str]:
    """`text`'s BM25 tokens that are not function words: what a keyword match must share
    with a query to say the two are about the same thing."""
    return frozenset(t for t in tokenize(text) if t not in function)


@dataclass
class _Base:
    """An immutable bm25s index over `keys` (row → chunk key)."""

    model: Any
    keys: npt.NDArray[np.int64]
    rows: dict[int, int]
    df: npt.NDArray[np.int64]
    total_len: int

    @property
    def size(self) -> int:
        return len(self.keys)


def build_base(docs: Sequence[tuple[int, npt.NDArray[np.int32]]], vocab_size: int) -> _Base:
    """A bm25s index over `(key, token ids)`; runs in a worker thread for large collections."""
    import bm25s
    import numpy as np

    model = bm25s.BM25(method="lucene", k1=K1, b=B)
    ids = [d[1].tolist() or [0] for d in docs]  # bm25s needs a token per document
    size = max(vocab_size, 1)
    model.index((ids, {i: i for i in range(size)}), create_empty_token=False,
                show_progress=False)
    indptr = model.scores["indptr"]
    df = np.diff(indptr).astype(np.int64)
    keys = np.fromiter((d[0] for d in docs), dtype=np.int64, count=len(docs))
    return _Base(model, keys, {int(k): i for i, k in enumerate(keys)}, df,
                 sum(len(d[1]) for d in docs))


class Bm25Index:
    """The BM25 half of a `CollectionIndex`; keys are the index's integer chunk keys."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.tokens: dict[int, npt.NDArray[np.int32]] = {}  # every live document
        self.base: _Base | None = None
        self.masked: Any = None  # bool array over base rows (removed)
        self.masked_count = 0
        self.delta: dict[int, Counter[int]] = {}
        self.postings: dict[int, dict[int, int]] = {}  # token id -> {delta key: tf}
        self.delta_len = 0
        self.building = False
        # Documents were added in bulk (tokens only): rebuild before searching.
        self.stale = False

    def __len__(self) -> int:
        return len(self.tokens)

    def _ids(self, tokens: Iterable[str], *, grow: bool) -> list[int]:
        out = []
        for token in tokens:
            tid = self.vocab.get(token)
            if tid is None:
                if not grow:
                    continue
                tid = self.vocab[token] = len(self.vocab)
            out.append(tid)
        return out

    def add(self, key: int, text: str, *, bulk: bool = False) -> None:
        """Adds a document to the delta; `bulk`: only records its tokens and leaves the
        index `stale` (rebuilt before the next search): a page of thousands of chunks is
        cheaper to build into a new base than to score one by one."""
        import numpy as np

        ids = self._ids(tokenize(text), grow=True)
        self.tokens[key] = np.asarray(ids, dtype=np.int32)
        if bulk:
            self.stale = True
            return
        counts = Counter(ids)
        self.delta[key] = counts
        self.delta_len += len(ids)
        for tid, tf in counts.items():
            self.postings.setdefault(tid, {})[key] = tf

    def remove(self, key: int) -> None:
        if self.tokens.pop(key, None) is None:
            return
        counts = self.delta.pop(key, None)
        if counts is not None:
            self.delta_len -= sum(counts.values())
            for tid in counts:
                bucket = self.postings.get(tid)
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del self.postings[tid]
            return
        row = self.base.rows.get(key) if self.base is not None else None
        if row is not None and not self.masked[row]:
            self.masked[row] = True
            self.masked_count += 1

    def needs_rebuild(self) -> bool:
        base = self.base.size if self.base is not None else 0
        return self.stale or (not self.building and (
            len(self.delta) > max(1000, base // 10) or self.masked_count > max(1000, base // 5)))

    def snapshot(self) -> tuple[list[tuple[int, npt.NDArray[np.int32]]], int]:
        """What a rebuild needs, taken on the caller's thread (the token arrays are never
        mutated, only replaced)."""
        return list(self.tokens.items()), len(self.vocab)

    def swap(self, base: _Base) -> None:
        """Installs a base built from a snapshot: documents added since stay in the delta,
        documents removed since are masked."""
        import numpy as np

        self.base = base
        self.masked = np.zeros(base.size, dtype=bool)
        self.masked_count = 0
        for row, key in enumerate(base.keys.tolist()):
            if key not in self.tokens:
                self.masked[row] = True
                self.masked_count += 1
        if self.stale:  # documents added in bulk after the snapshot: not in any base
            return
        for key in [k for k in self.delta if k in base.rows]:
            counts = self.delta.pop(key)
            self.delta_len -= sum(counts.values())
            for tid in counts:
                bucket = self.postings[tid]
                bucket.pop(key, None)
                if not bucket:
                    del self.postings[tid]

    def rebuild(self) -> None:
        self.swap(build_base(*self.snapshot()))
        self.stale = False

    def search(self, query: str, n: int,
               allowed: KeyFilter | None = None) -> list[tuple[int, float]]:
        """Up to `n` (key, score) with a positive score, best first, only keys `allowed`
        passes (over-fetched and filtered, exact over the passing keys when too few pass)."""
        if self.stale:
            self.rebuild()
        ids = list(dict.fromkeys(self._ids(tokenize(query), grow=False)))
        if not ids or n <= 0:
            return []
        base = self.base
        n_base = base.size - self.masked_count if base is not None else 0
        n_docs = n_base + len(self.delta)
        if n_docs == 0:
            return []
        total = (base.total_len if base is not None else 0) + self.delta_len
        avgdl = max(total / n_docs, 1e-9)
        found: list[tuple[int, float]] = []
        # Delta: the formula bm25s precomputes, with df and N over base + delta.
        if self.postings:
            scores: dict[int, float] = {}
            for tid in ids:
                bucket = self.postings.get(tid)
                if not bucket:
                    continue
                df = len(bucket) + (int(base.df[tid]) if base is not None and
                                    tid < len(base.df) else 0)
                idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
                for key, tf in bucket.items():
                    dl = len(self.tokens[key])
                    scores[key] = scores.get(key, 0.0) + idf * tf / (
                        tf + K1 * (1 - B + B * dl / avgdl))
            found.extend((k, s) for k, s in scores.items()
                         if allowed is None or allowed.passes(k))
        if base is not None:
            known = [t for t in ids if t < len(base.df)]
            if known:
                arr = base.model.get_scores_from_ids(known)
                if self.masked_count:
                    arr[self.masked] = 0.0
                found.extend(_top_positive(arr, base.keys, n, allowed))
        found.sort(key=lambda e: -e[1])
        return found[:n]


def _top_positive(scores: npt.NDArray[Any], keys: npt.NDArray[np.int64], n: int,
                  allowed: KeyFilter | None) -> list[tuple[int, float]]:
    """The best `n` positive scores (as (key, score)) among keys `allowed` passes: the top
    4n filtered first; when too few pass, exactly over the passing keys."""
    import numpy as np

    positive = np.flatnonzero(scores > 0)
    if len(positive) == 0:
        return []
    want = n if allowed is None else n * 4
    if want < len(positive):
        part = positive[np.argpartition(-scores[positive], want)[:want]]
        order = part[np.argsort(-scores[part], kind="stable")]
    else:
        order = positive[np.argsort(-scores[positive], kind="stable")]
    out = [(int(keys[i]), float(scores[i])) for i in order.tolist()
           if allowed is None or allowed.passes(int(keys[i]))]
    if len(out) >= n or want >= len(positive) or allowed is None:
        return out[:n]
    positive = positive[np.isin(keys[positive], allowed.keys(), assume_unique=True)]
    if len(positive) > n:
        positive = positive[np.argpartition(-scores[positive], n)[:n]]
    order = positive[np.argsort(-scores[positive], kind="stable")]
    return [(int(keys[i]), float(scores[i])) for i in order.tolist()]
