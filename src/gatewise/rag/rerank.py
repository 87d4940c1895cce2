"""`ModelReranker`: re-ranking by a configured chat model (`rag.rerank_model`).

A search that asks for `rerank` sends the query and the fused candidates, numbered, to the
model in one call and reads back one 0-10 relevance score per candidate. The call goes through
the whole chain as the gateway's own (routed, retried, billed), under the caller's tenant and
team, as memory's summariser does. A reply that cannot be read keeps the fused order (the
scores given back are the fused ones): re-ranking may improve a result, never break a search.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from gatewise.pipeline.runner import Runner
from gatewise.rag.types import Hit

INSTRUCTION = (
    "You judge search results. For each numbered passage, rate from 0 (unrelated) to 10 "
    "(answers the query completely) how well it answers the query. Reply with JSON only: "
    '{"scores": [s1, s2, ...]}, one number per passage, in the order given.')
_PASSAGE_CHARS = 1200
_JSON = re.compile(r"\{.*\}", re.S)


class ModelReranker:
    def __init__(self, runner: Runner, model: str, *, max_tokens: int = 400) -> None:
        self.runner = runner
        self.model = model
        self.max_tokens = max_tokens

    async def __call__(self, query: str, hits: list[Hit]) -> list[float]:
        if not hits:
            return []
        passages = "\n\n".join(f"[{i}] {h.chunk.text[:_PASSAGE_CHARS]}"
                               for i, h in enumerate(hits, 1))
        result = await self.runner.chat(
            model=self.model, max_tokens=self.max_tokens, temperature=0,
            messages=[{"role": "system", "content": INSTRUCTION},
                      {"role": "user", "content": f"Query: {query}\n\n{passages}"}])
        scores = parse_scores(result.content or "", len(hits))
        return scores if scores is not None else [h.score for h in hits]


def parse_scores(text: str, n: int) -> list[float] | None:
    """`n` scores scaled to 0..1 from the model's reply, or None when it gave no usable list."""
    found = _JSON.search(text)
    if found is None:
        return None
    try:
        data = json.loads(found.group(0))
    except ValueError:
        return None
    raw = data.get("scores") if isinstance(data, dict) else None
    if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) != n:
        return None
    out: list[float] = []
    for v in raw:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None
        out.append(min(10.0, max(0.0, float(v))) / 10.0)
    return out
