"""No chunk text is lost to the embedder's window (issue 13). all-MiniLM-L6-v2 reads 254 word
pieces of a text and drops the rest silently, while chunk budgets count cl100k tokens; German
prose and code take more word pieces than cl100k tokens, so a chunk within its budget could
end in a tail no vector saw. Now every chunk is cut to the window of the embedder it is
stored with (`make_chunker(window=...)`, which `Knowledge` passes), and the RAG model reads a
longer text (a caller's own chunk, a long query) whole, as windows whose vectors are
averaged. An embedding alias declares its limit, or gets a small safe one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gatewise.config.loader import parse_config, resolve_config
from gatewise.embedding import AliasEmbedder, BoundedCount, ThreadedEmbedder, Window, window_of
from gatewise.embedding.local import split_windows
from gatewise.pipeline.core import ANONYMOUS
from gatewise.rag.build import build_rag
from gatewise.rag.chunkers import CHUNKERS, default_counter, make_chunker
from gatewise.rag.loaders import load_path
from gatewise.rag.types import LoadedDocument, Section
from gatewise.storage.chunks_memory import MemoryChunkStore
from tests.unit.rag.words import DIM, word_vector

FIXTURES = Path(__file__).parent / "fixtures"
COUNT = default_counter()


class BagOfWords:
    """A blocking `TextEmbedder` (for the semantic chunker) that declares no window."""

    name = "words"
    dimension = DIM

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([word_vector(t) for t in texts])


def _model_installed() -> bool:
    try:
        from gatewise.embedding import check_installed

        check_installed()
        import bm25s  # noqa: F401
        import usearch  # noqa: F401
    except Exception:
        return False
    return True


local_model = pytest.mark.skipif(not _model_installed(), reason="the rag extra and the local "
                                 "model are not installed")

# -- the specification: a fact in a long chunk's tail is found by its meaning ------------------

FACT = "The lighthouse keeper on Skerry Island feeds three grey cats every morning."
QUESTION = "Who looks after the cats on Skerry Island?"
# German prose: about 1.16 word pieces per cl100k token, so 230 cl100k tokens of it are
# past MiniLM's window while still inside a 256-token chunk budget.
GERMAN = (
    "Die Jahreshauptversammlung der Kleingartenvereinigung beschloss eine Überarbeitung der "
    "Gebührenordnung für Gemeinschaftsflächen. Laut Bauaufsichtsbehörde müssen "
    "Brandschutztüren im Treppenhaus halbjährlich überprüft und die Prüfprotokolle archiviert "
    "werden. Die Stadtwerke kündigten Instandhaltungsarbeiten an der Fernwärmeleitung entlang "
    "der Bahnhofstraße an. Anwohnerinnen und Anwohner erhalten Parkausweise beim "
    "Bürgerservice im Erdgeschoss des Rathauses. Der Haushaltsausschuss verschob die "
    "Entscheidung über die Sanierung der Sporthalle auf die nächste Sitzungsperiode. Die "
    "Verkehrsbehörde ordnete eine Geschwindigkeitsbegrenzung vor der Grundschule an. "
    "Vereinsmitglieder werden gebeten, Abfallbehälter ausschließlich an den ausgewiesenen "
    "Sammelstellen abzustellen. ")
# Python: about 1.2 word pieces per cl100k token; one function, so one block.
CODE = ("def convert(value: dict[str, list[int]], *, scale: float = 1.5) -> tuple[int, ...]:\n"
        + "".join(f"    part_{n} = [int(x * scale) for x in value.get('k{n}', []) if x % {n + 2}]\n"
                  for n in range(7))
        + "    return tuple(part_0 + part_1)\n")
NEIGHBOURS = {
    "cats": "Cats sleep for up to sixteen hours a day and groom themselves often.",
    "islands": "The Faroe Islands lie between Iceland and Norway in the North Atlantic.",
    "lighthouses": "Lighthouses guided ships along dangerous coasts before satellite navigation.",
    "pets": "Dogs and rabbits need daily exercise and fresh water.",
    "ferries": "The ferry to the outer islands runs twice a week in winter.",
    "birds": "Seagulls nest on cliffs along the northern coast.",
    "bread": "Sourdough bread needs a starter that is fed every day.",
    "tax": "Income tax returns are due at the end of July.",
}


def _document(kind: str) -> LoadedDocument:
    if kind == "prose":
        return LoadedDocument("notes", (Section(GERMAN + FACT),), {"language": "de"})
    return LoadedDocument("module.py", (Section(CODE + f"    # {FACT}\n", kind="code"),),
                          {"language": "python"})


def _config(tmp: Path) -> Any:
    cfg, warnings = parse_config({"storage": {"state_dir": str(tmp)},
                                  "rag": {"store": "memory", "chunk_tokens": 256}})
    return resolve_config(cfg, None, {}, warnings)


class _NoAlias:
    async def embed(self, input: Any, *, model: str | None = None, **params: Any) -> Any:
        raise AssertionError("the local model is configured")


@local_model
@pytest.mark.parametrize("kind", ["prose", "code"])
async def test_a_fact_only_in_the_tail_of_a_long_chunk_is_found_by_vector_search(
        tmp_path: Path, kind: str) -> None:
    from gatewise.embedding import MiniLMEmbedder

    doc = _document(kind)
    # Precondition: the chunking of today (cl100k budget alone) keeps the whole text as one
    # chunk, and the fact starts past the model's 254th word piece of it.
    today = make_chunker("recursive", tokens=256, count=COUNT).chunk(doc)
    holder = next(c for c in today if FACT in c.text)
    pieces = MiniLMEmbedder().count_tokens(holder.text[:holder.text.index(FACT)])
    assert pieces > 254, pieces

    kb = build_rag(_config(tmp_path), embeddings=_NoAlias(), open_store=MemoryChunkStore)
    try:
        await kb.create_collection(ANONYMOUS, "kb")
        docs = [doc, *(LoadedDocument(k, (Section(t),)) for k, t in NEIGHBOURS.items())]
        report = await kb.ingest(ANONYMOUS, "kb", docs)
        assert not report.failed
        hits = await kb.search(ANONYMOUS, "kb", QUESTION, k=5, mode="vector")
        assert any(FACT in h.chunk.text for h in hits), [h.chunk.text[:60] for h in hits]
    finally:
        await kb.aclose()


# -- chunks cut to the window ----------------------------------------------------------------

# A toy window: 40 "pieces", one per character of a word beyond four (long words cost more
# here than in the budget's word count, as long German words do in MiniLM's vocabulary).
def _pieces(text: str) -> int:
    return sum(max(1, len(w) - 4) for w in text.split())


TOY = Window(40, _pieces, "toy40")


def test_a_bounded_count_is_within_the_budget_only_when_the_text_fits_both() -> None:
    words = lambda t: len(t.split())  # noqa: E731
    count = BoundedCount(words, TOY, budget=20)
    short = "a b c"
    assert count(short) == 3  # well inside both: the budget's own count
    heavy = "Gemeinschaftsflächen " * 4  # 4 words, 68 pieces: over the window
    assert count(heavy) > 20
    assert count("word " * 21) == 21  # over the budget on its own count
    edge = "abcdefgh " * 10  # 10 words, exactly 40 pieces
    assert count(edge) <= 20 < count(edge + "abcde")


@pytest.mark.parametrize("name", [n for n in CHUNKERS])
@pytest.mark.parametrize("fixture", ["guide.md", "multilingual.txt", "sample.py", "sample.go",
                                     "page.html"])
def test_every_chunker_keeps_every_chunk_within_the_window_and_the_budget(
        name: str, fixture: str) -> None:
    doc = load_path(FIXTURES / fixture)
    words = lambda t: len(t.split())  # noqa: E731
    unbounded = make_chunker(name, tokens=24, overlap=4, count=words, embedder=BagOfWords())
    bounded = make_chunker(name, tokens=24, overlap=4, count=words, embedder=BagOfWords(),
                           window=TOY)
    before, after = unbounded.chunk(doc), bounded.chunk(doc)
    assert all(_pieces(c.text) <= TOY.tokens for c in after)
    assert all(c.tokens == words(c.text) <= 24 for c in after)  # tokens: the budget's count
    assert all(doc.text[c.metadata["char_start"]:c.metadata["char_end"]] == c.text
               for c in after)
    if any(_pieces(c.text) > TOY.tokens for c in before):
        assert [c.text for c in after] != [c.text for c in before]
    # The window is part of the settings, so a collection chunked without it is re-chunked.
    assert bounded.settings == f"{unbounded.settings}:toy40"  # type: ignore[attr-defined]


def test_no_text_is_dropped_when_chunks_are_cut_to_the_window() -> None:
    doc = LoadedDocument("d", (Section(GERMAN + FACT),))
    chunks = make_chunker("sentence", tokens=256, count=COUNT, window=TOY).chunk(doc)
    assert "".join(c.text for c in chunks).replace(" ", "") == doc.text.replace(" ", "")


# -- windows of a long text ------------------------------------------------------------------

def test_a_text_within_the_limit_is_one_run_and_a_longer_one_equal_windows() -> None:
    short = [101, *range(1000, 1010), 102]
    long = [101, *range(2000, 2021), 102]  # 21 ids of text, limit 10: 3 windows of 7
    rows, owners = split_windows([short[:10], long], limit=10)
    assert rows[0] == short[:10] and owners == [0, 1, 1, 1]
    windows = rows[1:]
    assert all(len(w) <= 10 and w[0] == 101 and w[-1] == 102 for w in windows)
    assert [len(w) - 2 for w in windows] == [7, 7, 7]
    assert [i for w in windows for i in w[1:-1]] == long[1:-1]  # every id, once, in order


def test_windows_of_uneven_length_never_leave_a_scrap() -> None:
    rows, _ = split_windows([[101, *range(255), 102]], limit=256)  # 255 ids, room for 254
    assert [len(r) - 2 for r in rows] == [128, 127]


def test_an_enormous_text_is_read_in_a_bounded_number_of_windows() -> None:
    rows, owners = split_windows([[101, *range(10_000), 102]], limit=10, most=4)
    assert [len(r) for r in rows] == [10] * 4 and owners == [0] * 4
    assert [i for r in rows for i in r[1:-1]] == list(range(32))  # the first four windows


@local_model
def test_the_model_reads_a_long_text_whole_as_the_mean_of_its_windows() -> None:
    from gatewise.embedding import MiniLMEmbedder

    truncating, reading = MiniLMEmbedder(), MiniLMEmbedder(windows=True)
    head = GERMAN * 2
    assert reading.count_tokens(head) > 254
    short = ["How do I reset my password?"]
    assert np.abs(reading.embed(short) - truncating.embed(short)).max() < 1e-6  # unchanged
    with_fact, without = reading.embed([head + FACT, head + "Das Wetter war schön."])
    assert float(with_fact @ without) < 0.999  # the tail counts ...
    cut = truncating.embed([head + FACT, head + "Das Wetter war schön."])
    assert float(cut[0] @ cut[1]) > 0.9999  # ... where truncation never saw it
    # The vector is the normalised mean of the windows' own vectors, in a batch or alone.
    loaded = reading._load()
    ids = loaded.tokenizer.encode(head + FACT).ids
    rows, _ = split_windows([ids], reading.max_tokens)
    mean = np.mean([reading._run(loaded, [r])[0] for r in rows], axis=0)
    assert float(with_fact @ (mean / np.linalg.norm(mean))) > 0.9999
    alone = reading.embed([head + FACT])[0]
    assert float(alone @ with_fact) > 0.9999


@local_model
def test_the_local_window_counts_word_pieces_without_loading_the_model() -> None:
    from gatewise.embedding import MiniLMEmbedder

    model = MiniLMEmbedder()
    window = window_of(ThreadedEmbedder(model))
    assert window is not None and window.tokens == 254 and window.label == "wordpiece254"
    assert window.count("hello world") == 2
    assert window.count("hello " * 300) == 300  # counted whole, never truncated
    assert model._loaded is None  # the tokenizer alone, not the ONNX session


# -- embedding aliases -------------------------------------------------------------------------

class _Client:
    async def embed(self, input: Any, *, model: str | None = None, **params: Any) -> Any:
        raise AssertionError("not called")


def test_an_alias_without_a_declared_limit_gets_a_small_one_counted_high() -> None:
    window = AliasEmbedder(_Client(), "emb").window
    assert window.tokens == 512
    assert window.count("abcdef") == 2 and window.count("東京") == 2  # bytes / 3, rounded up
    assert window.count("hello world, this is English") >= COUNT("hello world, this is English")


def test_an_alias_declares_its_limit_in_config_and_chunks_follow_it(tmp_path: Path) -> None:
    cfg, warnings = parse_config({"models": {"emb": [{"model": "fake/echo"}]},
                                  "storage": {"state_dir": str(tmp_path)},
                                  "rag": {"embedder": "emb", "embedder_max_tokens": 8191}})
    from gatewise.accounting.tokenizers import Tokenizers

    kb = build_rag(resolve_config(cfg, None, {}, warnings), embeddings=_Client(),
                   tokenizers=Tokenizers(), open_store=MemoryChunkStore)
    window = window_of(kb.embedder())
    assert window is not None and window.tokens == 8191 and window.label == "cl100k8191"
    assert window.count("hello world") == COUNT("hello world")


def test_an_embedder_that_declares_no_window_leaves_chunking_as_it_was() -> None:
    assert window_of(BagOfWords()) is None
    assert window_of(ThreadedEmbedder(BagOfWords())) is None  # type: ignore[arg-type]
