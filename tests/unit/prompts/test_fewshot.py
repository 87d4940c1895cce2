"""Few-shot selection: the examples most similar to the request that fit the token budget,
the closest one last; the set's order without an embedder; and once with the real local
embedder (`gatewise.embedding`, all-MiniLM-L6-v2 on ONNX Runtime)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from gatewise.prompts.fewshot import EXAMPLE_FRAMING_TOKENS, Example, FewShotSelector


class BagOfWords:
    """A tiny deterministic embedder: hashed word counts, L2-normalised."""

    name = "bag-of-words"
    dimension = 64

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(len(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dimension] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    async def aclose(self) -> None:
        return None


SET = [
    Example("How do I reset my password?", "Use the 'Forgot password' link."),
    Example("What are your opening hours?", "9 to 5, Monday to Friday."),
    Example("How do I change my password?", "Settings, then Security."),
    Example("Where is my parcel?", "Track it with the number in your email."),
]


def words(text: str) -> int:
    return len(text.split())


async def test_the_most_similar_examples_come_closest_to_the_request() -> None:
    sel = FewShotSelector({"faq": SET}, BagOfWords())
    got = await sel.select("faq", "I forgot my password, how do I reset it?", k=2,
                           budget_tokens=None, count=words)
    assert got == [SET[2], SET[0]]  # reset is closest, so it comes last


async def test_the_budget_is_never_exceeded_and_smaller_examples_fill_it() -> None:
    big = Example("password " * 50, "x")
    sel = FewShotSelector({"faq": [big, *SET]}, BagOfWords())
    budget = 2 * EXAMPLE_FRAMING_TOKENS + 20
    got = await sel.select("faq", "password password", k=3, budget_tokens=budget, count=words)
    assert big not in got
    assert sum(words(e.input) + words(e.output) + EXAMPLE_FRAMING_TOKENS for e in got) <= budget
    assert got and all(e in SET for e in got)


async def test_without_an_embedder_the_sets_order_decides() -> None:
    sel = FewShotSelector({"faq": SET})
    got = await sel.select("faq", "parcel", k=2, budget_tokens=None, count=words)
    assert got == [SET[1], SET[0]]


async def test_a_sets_vectors_are_computed_once() -> None:
    emb = BagOfWords()
    sel = FewShotSelector({"faq": SET}, emb)
    for q in ("password", "hours", "parcel"):
        await sel.select("faq", q, k=1, budget_tokens=None, count=words)
    assert emb.batches == [4, 1, 1, 1]


async def test_selection_with_the_local_embedding_model() -> None:
    from gatewise.embedding import local_embedder  # the `semantic` extra (make install-dev)

    embedder = local_embedder()
    try:
        sel = FewShotSelector({"faq": SET}, embedder)
        got = await sel.select("faq", "I can't remember my login secret, can you help me set a "
                               "new one?", k=2, budget_tokens=None, count=words)
        assert {got[-1], got[-2]} == {SET[0], SET[2]}  # the two password questions
        got = await sel.select("faq", "When does the shop open?", k=1, budget_tokens=None,
                               count=words)
        assert got == [SET[1]]
    finally:
        await embedder.aclose()


async def test_warming_embeds_every_set_before_the_first_request() -> None:
    emb = BagOfWords()
    sel = FewShotSelector({"faq": SET, "more": SET[:2]}, emb)
    await sel.warm()
    assert emb.batches == [4, 2]
    await sel.select("faq", "parcel", k=1, budget_tokens=None, count=words)
    assert emb.batches == [4, 2, 1]  # only the query is embedded now
