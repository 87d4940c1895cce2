"""Retrieval quality and citation precision for `rag_bench.py` (the datasets and the metrics).

Datasets, each shipped inside a registry package (nothing is downloaded):

- `chatterbot`: the English conversations of `chatterbot-corpus` (BSD-3-Clause, installed by
  `make install`): 2,000 human-written question → answer pairs (tech support, trivia, AI,
  science, ...). As answer retrieval, the way BEIR frames FiQA: the corpus is every distinct
  answer, a query is a question, and its relevant documents are the answers given to it.
- `fow-pairs`: the question pairs of `fow-cache` (`fow_cache/data/pairs.jsonl`, data CC BY 4.0,
  © 2026 Mabon ap Gwyn; installed with the bench extras), framed as duplicate-question
  retrieval the way BEIR frames Quora: the corpus is every distinct question (1,106), a query
  is one question of a pair marked `same_answer: true` (paraphrases, near repeats) and its
  relevant documents are its partners; the query itself is left out of its own ranking. The
  near misses (`same_answer: false`: negations, swapped entities, numbers, scope) are in the
  corpus and NOT relevant: they are the hard negatives a lexical match falls for. Pairs the
  authors flagged `ambiguous` are judged neither way (not queries, not relevant).
- `fow-conv`: the conversation pairs of the same package (`conv-parts/`, `conv-long/`, same
  licence), framed the same way: the corpus is every conversation (its turns, `role: text`
  per line), a query is a conversation of a `same_answer` pair (reworded, extra chatter,
  irrelevant history), relevant its partner; the context and detail swaps are hard negatives.
- `beir`: any BEIR-format folder or zip (`corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`),
  e.g. SciFact or NFCorpus fetched by hand: `--beir PATH`. No PyPI package was found that
  ships one of these with its corpus (see bench/README.md), so it is an option, not the default.

Metrics, per query then averaged: recall@10 (relevant documents in the top 10 over all
relevant ones) and nDCG@10 (graded gains, log2 discount, ideal ordering from the qrels).
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Dataset:
    name: str
    docs: dict[str, str]  # id -> text
    queries: dict[str, str]  # id -> text
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> grade (> 0)
    licence: str
    note: str = ""
    # query id -> doc ids left out of that query's ranking (the query itself, as BEIR does
    # for Quora: a question is trivially its own nearest neighbour)
    exclude: dict[str, set[str]] = field(default_factory=dict)


def chatterbot(*, max_queries: int | None = None, seed: int = 13) -> Dataset:
    import chatterbot_corpus  # type: ignore[import-untyped]  # BSD-3-Clause, make install
    import yaml

    root = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    doc_ids: dict[str, str] = {}
    docs: dict[str, str] = {}
    queries: dict[str, str] = {}
    by_text: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for path in sorted(root.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for n, conv in enumerate(data.get("conversations") or []):
            if not isinstance(conv, list) or len(conv) < 2:
                continue
            question, answer = str(conv[0]).strip(), str(conv[1]).strip()
            if not question or not answer:
                continue
            key = " ".join(answer.lower().split())
            did = doc_ids.get(key)
            if did is None:
                did = doc_ids[key] = f"{path.stem}-{n}"
                docs[did] = answer
            qkey = " ".join(question.lower().split())
            qid = by_text.get(qkey)
            if qid is None:
                qid = by_text[qkey] = f"q-{path.stem}-{n}"
                queries[qid] = question
            qrels.setdefault(qid, {})[did] = 1
    if max_queries is not None and len(queries) > max_queries:
        keep = sorted(random.Random(seed).sample(sorted(queries), max_queries))
        queries = {q: queries[q] for q in keep}
        qrels = {q: qrels[q] for q in keep}
    return Dataset("chatterbot-corpus (en)", docs, queries, qrels, "BSD-3-Clause",
                   "answer retrieval: question -> the answers given to it")


def _fow_data() -> Path:
    import fow_cache  # type: ignore[import-untyped]  # data CC BY 4.0 (LICENSE-DATA)

    return Path(fow_cache.__file__).parent / "data"


def _pair_retrieval(name: str, rows: Iterable[Mapping[str, Any]],
                    render: Callable[[Any], str], note: str, *, max_queries: int | None = None,
                    seed: int = 13) -> Dataset:
    """Duplicate retrieval over pairs: every side a document; each side of a `same_answer`
    pair a query whose relevant documents are its partners (itself excluded)."""
    ids: dict[str, str] = {}
    docs: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}

    def doc_id(text: str) -> str:
        key = " ".join(text.lower().split())
        if key not in ids:
            ids[key] = f"{name}-{len(ids)}"
            docs[ids[key]] = text
        return ids[key]

    for row in rows:
        a, b = doc_id(render(row["a"])), doc_id(render(row["b"]))
        if row["same_answer"] is True and not row.get("ambiguous") and a != b:
            qrels.setdefault(a, {})[b] = 1
            qrels.setdefault(b, {})[a] = 1
    keep = sorted(qrels)
    if max_queries is not None and len(keep) > max_queries:
        keep = sorted(random.Random(seed).sample(keep, max_queries))
    queries = {q: docs[q] for q in keep}
    qrels = {q: qrels[q] for q in keep}
    return Dataset(name, docs, queries, qrels, "CC BY 4.0 (fow-cache data)", note,
                   exclude={q: {q} for q in queries})


def fow_pairs(*, max_queries: int | None = None) -> Dataset:
    path = _fow_data() / "pairs.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return _pair_retrieval("fow-pairs", rows, str,
                           "duplicate questions (as BEIR Quora); near misses not relevant",
                           max_queries=max_queries)


def fow_conv(*, max_queries: int | None = None) -> Dataset:
    rows = []
    for path in sorted((_fow_data() / "conv-parts").glob("*.jsonl")) + \
            sorted((_fow_data() / "conv-long").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip()]

    def render(turns: Any) -> str:
        return "\n".join(f"{t['role']}: {t['content']}" for t in turns)

    return _pair_retrieval("fow-conv", rows, render,
                           "duplicate conversations; context/detail swaps not relevant",
                           max_queries=max_queries)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "chatterbot": chatterbot, "fow-pairs": fow_pairs, "fow-conv": fow_conv}


def beir(path: str, *, max_docs: int | None = None, max_queries: int | None = None,
         split: str = "test", seed: int = 13) -> Dataset:
    """A BEIR folder or zip. `max_docs` keeps every judged document and fills up with a
    random sample of the others (so recall stays comparable, the corpus just gets easier)."""
    files = _Files(path)
    qrels: dict[str, dict[str, int]] = {}
    reader = csv.reader(io.StringIO(files.read(f"qrels/{split}.tsv")), delimiter="\t")
    for row in reader:
        if len(row) < 3 or row[0] == "query-id":
            continue
        if int(row[2]) > 0:
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    queries = {}
    for line in files.read("queries.jsonl").splitlines():
        if line.strip():
            q = json.loads(line)
            if q["_id"] in qrels:
                queries[q["_id"]] = q["text"]
    qrels = {q: r for q, r in qrels.items() if q in queries}
    rng = random.Random(seed)
    if max_queries is not None and len(queries) > max_queries:
        keep = sorted(rng.sample(sorted(queries), max_queries))
        queries = {q: queries[q] for q in keep}
        qrels = {q: qrels[q] for q in keep}
    judged = {d for r in qrels.values() for d in r}
    docs: dict[str, str] = {}
    others: list[tuple[str, str]] = []
    for line in files.read("corpus.jsonl").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        text = f"{d.get('title') or ''}\n{d.get('text') or ''}".strip()
        if d["_id"] in judged:
            docs[d["_id"]] = text
        else:
            others.append((d["_id"], text))
    room = len(others) if max_docs is None else max(0, max_docs - len(docs))
    for did, text in (others if room >= len(others) else rng.sample(others, room)):
        docs[did] = text
    return Dataset(f"BEIR {Path(path).stem}", docs, queries, qrels, "see the dataset",
                   f"{len(docs):,} documents" + (" (subset)" if room < len(others) else ""))


class _Files:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.zip = zipfile.ZipFile(self.path) if self.path.suffix == ".zip" else None

    def read(self, name: str) -> str:
        if self.zip is None:
            return (self.path / name).read_text(encoding="utf-8")
        match = [n for n in self.zip.namelist() if n.endswith("/" + name) or n == name]
        if not match:
            raise FileNotFoundError(f"{name} in {self.path}")
        return self.zip.read(match[0]).decode("utf-8")


# -- metrics ------------------------------------------------------------------------------------

def recall_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0


# -- citation questions ---------------------------------------------------------------------

# Questions on langkit's metric reference (`langkit/docs/modules.md`, Apache-2.0, installed
# with `make install`), each with a phrase of the section that answers it: a citation is
# precise when the chunk it points at contains that phrase.
CITATION_QUESTIONS: list[tuple[str, str]] = [
    ("How is the relevance of a response to its prompt computed?",
     "cosine similarity between embeddings generated from both prompt and response"),
    ("Which analyzer computes the sentiment score?", "nltk's Vader sentiment analyzer"),
    ("What does syllable_count return?", "number of syllables present in the input text"),
    ("What does a higher Flesch reading ease score mean?",
     "Higher scores indicate material that is easier to read"),
    ("How does the injection metric score a prompt?",
     "maximum similarity score between the target and a group of known jailbreak"),
    ("How does proactive injection detection decide that a prompt is an attack?",
     "repeat a randomly generated string"),
    ("Which engine identifies PII?", "Microsoft's Presidio"),
    ("What does pii_presidio.entities_count return?",
     "the number of detected entities in the given prompt/response"),
    ("What does polysyllable_count count?", "words with three or more syllables"),
    ("What does the Gunning Fog index estimate?",
     "years of formal education a person needs to understand the text"),
    ("In which order are the regex pattern groups applied?",
     "The regexes are applied in the order defined"),
    ("What does the jailbreaks theme contain?", "a set of known jailbreak examples"),
    ("What does the refusals theme contain?", "a set of known LLM refusal examples"),
    ("What does a hallucination score near 1 mean?",
     "scores towards 1 mean high inconsistency between samples"),
    ("What does letter_count return?", "number of letters present in the input text"),
    ("What does monosyllable_count count?", "words with one syllable"),
]


def langkit_docs() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("langkit")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("langkit is not installed (make install)")
    return Path(next(iter(spec.submodule_search_locations))) / "docs" / "modules.md"


def supports(text: str, phrase: str) -> bool:
    norm = " ".join(text.lower().replace("`", "").replace("\\", "").split())
    return " ".join(phrase.lower().split()) in norm


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    cited = [c for r in rows for c in r["precise"]]
    return {"questions": len(rows), "answers_with_citations": sum(1 for r in rows if r["precise"]),
            "citations": len(cited), "precise": sum(cited),
            "precision": (sum(cited) / len(cited)) if cited else None,
            "not_found": sum(1 for r in rows if r.get("not_found"))}


def fuse_scores(lists: Sequence[Sequence[tuple[int, float]]],
                weights: Sequence[float]) -> list[tuple[int, float]]:
    """Score fusion, the alternative to `gatewise.rag.search.fuse` that rag_bench.py's
    held-out grid weighs against it (kept here, beside the grid, until it wins held out):
    each list min-max scaled to 0..1 over its own candidates (a key a list did not return
    scores 0 there), then summed with `weights`. A list whose scores are all equal carries no
    order, so it scales to 0 everywhere and the other list decides alone (so does one weighted
    0). Ties go to the key ranked higher in an informative list (a list's last candidate
    scales to 0 like the keys it never returned, yet it was ranked), then to first
    appearance. Not the shipped default: held out, it never beat RRF."""
    fused: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        for key, _ in ranked:
            fused.setdefault(key, 0.0)
        if not ranked or weight <= 0:
            continue
        low = min(score for _, score in ranked)
        high = max(score for _, score in ranked)
        if high <= low:
            continue
        for rank, (key, score) in enumerate(ranked, 1):
            fused[key] += weight * (score - low) / (high - low)
            best_rank[key] = min(rank, best_rank.get(key, rank))
    never = len(fused) + 1
    return sorted(fused.items(), key=lambda e: (-e[1], best_rank.get(e[0], never)))


def top_z(ranked: Sequence[tuple[int, float]]) -> float:
    """How far a list's first score stands out from the rest of its own candidates, in
    standard deviations: a label-free guess at how sure the list is (query performance
    prediction). 0 when the list carries no spread to judge by (fewer than two scores, or
    all equal)."""
    scores = [s for _, s in ranked]
    if len(scores) < 2:
        return 0.0
    mu = sum(scores) / len(scores)
    sd = math.sqrt(sum((s - mu) ** 2 for s in scores) / len(scores))
    return (scores[0] - mu) / sd if sd > 0 else 0.0


def fuse_zscores(lists: Sequence[Sequence[tuple[int, float]]],
                 weights: Sequence[float]) -> list[tuple[int, float]]:
    """Z-score fusion (CombSUM of standardised scores), another alternative the held-out grid
    weighs against RRF: each list's scores standardised over its own candidates, so a list
    whose head stands far above its tail speaks louder for that query than min-max scaling
    lets it; a key a list did not return takes that list's lowest z (it ranked below every
    candidate). A flat or single-score list carries no order and adds nothing. Ties go to
    the key ranked higher in an informative list (its last candidate sits at the floor like
    the keys it never returned, yet it was ranked), then to first appearance."""
    fused: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    for ranked in lists:
        for key, _ in ranked:
            fused.setdefault(key, 0.0)
    for ranked, weight in zip(lists, weights, strict=True):
        scores = [s for _, s in ranked]
        if len(scores) < 2 or weight == 0:
            continue
        mu = sum(scores) / len(scores)
        sd = math.sqrt(sum((s - mu) ** 2 for s in scores) / len(scores))
        if sd <= 0:
            continue
        z = {key: (score - mu) / sd for key, score in ranked}
        floor = min(z.values())
        for key in fused:
            fused[key] += weight * z.get(key, floor)
        for rank, (key, _) in enumerate(ranked, 1):
            best_rank[key] = min(rank, best_rank.get(key, rank))
    never = len(fused) + 1
    return sorted(fused.items(), key=lambda e: (-e[1], best_rank.get(e[0], never)))
