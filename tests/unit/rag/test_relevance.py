"""The relevance floor's keyword side: a BM25 match makes a hit a source only when the chunk
shares an informative word with the question, never when it rests on function words alone
("what", "how", "der", "le"). BM25's own ranking is left as it is."""

from __future__ import annotations

import pytest

pytest.importorskip("bm25s")

from gatewise.rag.bm25 import Bm25Index, function_words, informative_terms
from gatewise.rag.middleware import relevant
from gatewise.rag.types import Chunk, Hit

LED_TABLE = """# What the LED colours mean

| LED | Meaning | What to do |
| --- | --- | --- |
| Solid green | Connected | Nothing |
| Blinking amber | Updating firmware | Wait; do not unplug the unit |
| Solid red | Overheating | Let it cool down |"""
ERROR_CODES = """# Error codes

E-412: the unit is overheating. Switch it off and let it cool down for ten minutes.
E-501: the firmware image is damaged; reinstall it from the support page."""
WIFI = "Move the router away from microwaves and cordless phones for a stronger signal."
DOCS = {1: LED_TABLE, 2: ERROR_CODES, 3: WIFI}
FAR = 0.05  # a cosine this low: the meaning is unrelated


@pytest.fixture(scope="module")
def words() -> frozenset[str]:
    return function_words()


def search(question: str) -> list[Hit]:
    """The BM25 hits for `question` over DOCS, as the retriever scores them, each with a
    vector similarity too low to count on its own."""
    index = Bm25Index()
    for key, text in DOCS.items():
        index.add(key, text)
    return [Hit(Chunk(f"doc{key}#0", f"doc{key}", 0, DOCS[key], 50), score, rank,
                {"bm25": score, "vector": FAR})
            for rank, (key, score) in enumerate(index.search(question, 10), 1)]


def test_a_match_on_what_alone_is_found_but_is_not_a_source(words: frozenset[str]) -> None:
    question = "What is the capital of Australia?"
    hits = search(question)
    assert [h.chunk.document_id for h in hits] == ["doc1"]  # ranking still sees "what"
    assert informative_terms(question, words) == {"capital", "australia"}
    assert not relevant(hits[0], None, 0.2, informative_terms(question, words))
    assert relevant(hits[0], None, 0.2)  # without the question's terms: the old floor


def test_an_error_code_is_a_real_keyword_match(words: frozenset[str]) -> None:
    question = "What does E-412 mean?"
    hits = search(question)
    assert hits[0].chunk.document_id == "doc2"
    assert relevant(hits[0], None, 0.2, informative_terms(question, words))
    assert relevant(search("e412")[0], None, 0.2, informative_terms("e412", words))


def test_a_close_meaning_still_counts_without_a_shared_word(words: frozenset[str]) -> None:
    chunk = Chunk("d#0", "d", 0, LED_TABLE, 50)
    terms = informative_terms("Why is the light orange?", words)
    assert relevant(Hit(chunk, 0.03, 1, {"bm25": 0.4, "vector": 0.45}), None, 0.2, terms)
    assert not relevant(Hit(chunk, 0.03, 1, {"bm25": 0.4, "vector": FAR}), None, 0.2, terms)


def test_a_question_of_function_words_only_leans_on_meaning(words: frozenset[str]) -> None:
    terms = informative_terms("What is it?", words)
    assert terms == frozenset()
    chunk = Chunk("d#0", "d", 0, "What it is: a router.", 5)
    assert not relevant(Hit(chunk, 0.03, 1, {"bm25": 2.0, "vector": FAR}), None, 0.2, terms)


def test_function_words_of_other_languages_count_as_well(words: frozenset[str]) -> None:
    assert informative_terms("Was ist der Fehlercode?", words) == {"fehlercode"}
    assert informative_terms("Quelle est la garantie ?", words) == {"garantie"}
    assert {"what", "how", "the", "der", "la"} <= words
    assert not {"capital", "reset", "firmware", "e412"} & words
