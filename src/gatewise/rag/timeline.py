"""Per-chunk detail of the `rag` step, for a caller who listens to its call's steps.

The `rag` step (`gatewise.rag.middleware`) always carries counts: they go to logs, traces and
the response's `rag` object. Someone watching the timeline (the REPL, the console's
playground) also wants to see *which* chunks came back and why they ranked where they did,
so a listened-to call's step gets `chunks`: one entry per retrieved hit (the search's top k,
never more), in rank order, with

- `rank`, `collection`, `document_id`, `chunk_id`, `source` (the document's `source` or
  title) and `section`;
- `score` (what ranked it: the fused score, or the re-ranker's / MMR's when they ran) and
  `scores`, each stage's own (`bm25`, `vector` cosine, `rrf`, `rerank`, `mmr`) where the
  retriever had them, rounded to 4 decimals;
- `status`: `source` (sent to the model as source `source_index`, the number its citations
  use), `below_min_score`, `injection_dropped` or `budget_dropped`; `flagged` when the
  injection scan kept it with a warning;
- `preview`: the first `PREVIEW_CHARS` characters of the chunk, and only when that is safe.

A preview is the only text a step ever carries, so it is held to two rules. The collection
must be the caller's own team's (or the caller an admin, who can read every collection
anyway): a collection another team shared gives ids and scores, never its words. And no
preview at all on a call a PII policy covers: the guardrails mask personal data in the
retrieved text before the model sees it, and a preview taken here, before them, would hand
it out unmasked in a step (and steps promise never to hold a PII value).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gatewise.config.schema import GuardrailsConfig
from gatewise.pipeline.core import Call, Identity
from gatewise.rag.citations import Source
from gatewise.rag.types import CollectionRecord, Hit

__all__ = ["PREVIEW_CHARS", "PiiCovered", "chunk_details", "pii_covered", "preview_allowed"]

PREVIEW_CHARS = 120

# Whether a PII policy covers a call (so its retrieved text is masked downstream).
PiiCovered = Callable[[Call], bool]


def pii_covered(config: GuardrailsConfig) -> PiiCovered:
    """The policy lookup the guardrails make (key, else team, else alias, else default),
    answering only whether the policy that wins has a PII guard."""
    keys = {k for k, p in config.keys.items() if p.pii is not None}
    teams = {k for k, p in config.teams.items() if p.pii is not None}
    aliases = {k for k, p in config.aliases.items() if p.pii is not None}
    default = config.default is not None and config.default.pii is not None

    def covered(call: Call) -> bool:
        ident = call.identity
        if ident.key_id is not None and ident.key_id in config.keys:
            return ident.key_id in keys
        if ident.team is not None and ident.team in config.teams:
            return ident.team in teams
        if call.alias in config.aliases:
            return call.alias in aliases
        return default

    return covered


def preview_allowed(identity: Identity, record: CollectionRecord, pii: bool) -> bool:
    """A preview only of the caller's own team's documents, never on a PII-guarded call."""
    return not pii and (identity.team is None or record.owner == identity.team)


def _round(v: float) -> float:
    return round(float(v), 4)


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[:PREVIEW_CHARS - 1].rstrip() + "\u2026"


def chunk_details(collection: str, hits: Sequence[Hit], *, kept: Sequence[Hit] = (),
                  screened: Sequence[Source] = (), sources: Sequence[Source] = (),
                  preview: bool = False) -> list[dict[str, Any]]:
    """One entry per retrieved hit, in rank order: where it went and why it ranked there.
    `kept` passed the score floor, `screened` passed the injection scan, `sources` went to
    the model (in prompt order)."""
    kept_ids = {id(h) for h in kept}
    screened_ids = {id(s.hit) for s in screened}
    source_at = {id(s.hit): n for n, s in enumerate(sources, 1)}
    flagged = {id(s.hit) for s in screened if s.note is not None}
    out: list[dict[str, Any]] = []
    for hit in hits:
        c = hit.chunk
        meta = c.metadata
        entry: dict[str, Any] = {
            "rank": hit.rank, "collection": collection, "document_id": c.document_id,
            "chunk_id": c.id, "source": meta.get("source") or meta.get("title"),
            "section": meta.get("section") or None, "score": _round(hit.score),
            "scores": {k: _round(v) for k, v in hit.scores.items()},
        }
        key = id(hit)
        if key in source_at:
            entry["status"] = "source"
            entry["source_index"] = source_at[key]
        elif key not in kept_ids:
            entry["status"] = "below_min_score"
        elif key not in screened_ids:
            entry["status"] = "injection_dropped"
        else:
            entry["status"] = "budget_dropped"
        if key in flagged:
            entry["flagged"] = True
        if preview:
            entry["preview"] = _preview(c.text)
        out.append(entry)
    return out
