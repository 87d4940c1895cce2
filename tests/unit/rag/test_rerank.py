"""`ModelReranker`: one call to the configured model scores every candidate; a reply that
cannot be read keeps the fused order instead of breaking the search."""

from __future__ import annotations

from typing import Any

from gatewise.rag.rerank import ModelReranker, parse_scores
from gatewise.rag.types import Chunk, Hit


class Runner:
    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.asked: list[dict[str, Any]] = []

    async def run(self, call: Any) -> Any:
        raise AssertionError("the reranker speaks plain messages")

    async def chat(self, prompt: str | None = None, **kw: Any) -> Any:
        self.asked.append(kw)
        reply = self.reply

        class Result:
            content = reply

        return Result()


def _hits(*texts: str) -> list[Hit]:
    return [Hit(Chunk(f"d#{i}", "d", i, t, 3), score=0.5 - i / 100, rank=i + 1)
            for i, t in enumerate(texts)]


async def test_the_model_scores_each_candidate_in_one_call() -> None:
    runner = Runner('Sure: {"scores": [2, 9.5, 0]}')
    scores = await ModelReranker(runner, "judge")("tallest volcano",
                                                  _hits("kangaroos", "Olympus Mons", "rice"))
    assert scores == [0.2, 0.95, 0.0]
    (asked,) = runner.asked
    assert asked["model"] == "judge" and asked["temperature"] == 0
    assert "[2] Olympus Mons" in asked["messages"][1]["content"]


async def test_an_unreadable_reply_keeps_the_fused_scores() -> None:
    hits = _hits("a", "b")
    assert await ModelReranker(Runner("I think the second."), "judge")("q", hits) == [
        h.score for h in hits]
    assert await ModelReranker(Runner("x"), "judge")("q", []) == []


def test_scores_are_read_strictly() -> None:
    assert parse_scores('{"scores": [10, 20, -1]}', 3) == [1.0, 1.0, 0.0]
    assert parse_scores('{"scores": [1, 2]}', 3) is None          # one per candidate
    assert parse_scores('{"scores": [1, "high", 2]}', 3) is None
    assert parse_scores('{"scores": [true, 1, 2]}', 3) is None
    assert parse_scores('{"score": [1, 2, 3]}', 3) is None
    assert parse_scores("{not json}", 1) is None
