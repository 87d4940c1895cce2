"""The false-hit minimal pairs, a fixed set, through the real local embedder (all-MiniLM-L6-v2
int8) at the default threshold: each first text is answered and stored, then the second is
looked up. Near misses (another country, another order number, a negation, another person,
address or direction) must never be served the first's answer; true paraphrases (case,
punctuation, contractions, pleasantries, typos) must be."""

from __future__ import annotations

import pytest

from gatewise.cache.semantic import SemanticCache
from gatewise.cache.store import ResponseCache
from gatewise.config.schema import SemanticCacheConfig
from gatewise.embedding import local_embedder
from gatewise.storage.memory import MemoryKV
from tests.unit.cache.test_semantic import completion, request

MUST_NOT_HIT = [
    ("What is the capital of France?", "What is the capital of Spain?"),
    ("Cancel my order 1234", "Cancel my order 1243"),
    ("Track order 48213", "Track order 48231"),
    ("Remind me at 7am", "Remind me at 7pm"),
    ("Cancel my subscription", "Don't cancel my subscription"),
    ("Which plans include international calls?", "Which plans don't include international calls?"),
    ("Can I pay with a credit card?", "Can I pay without a credit card?"),
    ("Is ibuprofen safe to take with alcohol?", "Is ibuprofen unsafe to take with alcohol?"),
    ("How do I turn on two-factor authentication?", "How do I turn off two-factor authentication?"),
    ("Is the clinic open on Sundays?", "Is the clinic closed on Sundays?"),
    ("Send the invoice to alice@example.com", "Send the invoice to bob@example.com"),
    ("Book a meeting with John Smith tomorrow", "Book a meeting with Jane Smith tomorrow"),
    ("Summarise https://example.com/a", "Summarise https://example.com/b"),
    ("Transfer $50 from savings to checking", "Transfer $50 from checking to savings"),
    ("How do I migrate my database from MySQL to Postgres?",
     "How do I migrate my database from Postgres to MySQL?"),
    ("How much holiday do full-time staff get?", "How much holiday do part-time staff get?"),
]

MUST_HIT = [
    ("What is the capital of France?", "what is the capital of france"),
    ("What is the capital of France?", "What's France's capital?"),
    ("How do I reset my password?", "Hi, how do I reset my password? Thanks!"),
    ("Cancel my order 1234", "Please cancel my order 1234."),
    ("Where can I find my invoice history?", "where do I find my invoice history"),
    ("Do you accept Apple Pay?", "DO YOU ACCEPT APPLE PAY?"),
    ("How long does delivery take?", "how long does delivery take??"),
]


@pytest.fixture(scope="module")
def sem() -> SemanticCache:
    return SemanticCache(SemanticCacheConfig(enabled=True), {}, local_embedder())


async def served(sem: SemanticCache, first: str, second: str) -> float | None:
    responses = ResponseCache(MemoryKV())
    scope = f"t/team:{first}"  # a fresh namespace per pair
    q = sem.query(scope, "m", request(first))
    assert q is not None
    await responses.put("k", completion("stored"), 60.0)
    await sem.remember(q, "k", 60.0)
    q2 = sem.query(scope, "m", request(second))
    assert q2 is not None
    hit = await sem.lookup(q2, responses)
    return None if hit is None else hit.similarity


@pytest.mark.parametrize(("first", "second"), MUST_NOT_HIT)
async def test_a_near_miss_is_never_served_the_other_answer(sem: SemanticCache, first: str,
                                                            second: str) -> None:
    assert await served(sem, first, second) is None
    assert await served(sem, second, first) is None


@pytest.mark.parametrize(("first", "second"), MUST_HIT)
async def test_a_true_paraphrase_is_served_the_stored_answer(sem: SemanticCache, first: str,
                                                             second: str) -> None:
    similarity = await served(sem, first, second)
    assert similarity is not None and similarity >= sem.config.threshold
