"""Chunks against the embedder's window (issue 13): how much text the local model never read,
and what reading it costs.

all-MiniLM-L6-v2 reads 254 word pieces of a text; chunk budgets count cl100k tokens, and
code and non-English text take more word pieces than cl100k tokens, so a 256-token chunk
may end in a tail no vector saw. On the repository's own documentation, two modules of the
chunkers' source and the multilingual fixture, this prints, in one run:

1. the share of chunks over the window for each chunker, without and with the window
   bounding the chunks (`make_chunker(window=...)`);
2. tail-fact recall@5: one-sentence facts planted so that today's chunking puts each beyond
   the 254th word piece of its chunk, then asked about in other words; the chunk holding the
   fact must be among the five nearest vectors of all the corpus's chunks. Three pairings:
   today (unbounded chunks, truncating model), windows only (unbounded chunks, the model
   reading a long text as windows, vectors averaged), and bounded chunks with windows (what
   `build_rag` configures; bounded chunks alone give the same vectors, since no bounded
   chunk is over the window for the windows to act on);
3. ingestion speed (recursive chunker, MiniLM int8, two runs at once, memory store) for each
   pairing, in chunks/s, thousand characters/s, CPU ms per chunk and CPU seconds for the
   whole corpus (the steadier figures on a shared host: the same text goes in each time).

    .venv/bin/python bench/rag_window_bench.py     # 20-60 s on two shared cores

Standalone, offline, never part of the test run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from gatewise.embedding import MiniLMEmbedder, ThreadedEmbedder, Window
from gatewise.rag.chunkers import default_counter, make_chunker
from gatewise.rag.ingest import Ingestor
from gatewise.rag.loaders import load_path
from gatewise.rag.types import Chunk, CollectionRecord, LoadedDocument
from gatewise.storage.chunks_memory import MemoryChunkStore

ROOT = Path(__file__).resolve().parent.parent
TOKENS = 256

# (fact, a question about it in other words)
FACTS = [
    ("The lighthouse keeper on Skerry Island feeds three grey cats every morning.",
     "Who looks after the cats on Skerry Island?"),
    ("Marguerite Okonkwo baked a four-layer lemon cake for the village fair in Dunmore.",
     "What cake was made for the Dunmore fair?"),
    ("The old copper bridge over the Varna river collapsed during the spring floods of 1911.",
     "When did the bridge across the Varna fall down?"),
    ("Penguins at the Halvorsen aquarium are fed sardines twice a day by a diver.",
     "What do the aquarium penguins in Halvorsen eat?"),
    ("A violin made by Ettore Brambilla sold at auction in Vienna for two million euros.",
     "How much did the Brambilla violin fetch in Vienna?"),
    ("The Quillon glacier retreats about forty metres every summer because of warming.",
     "How fast is the Quillon glacier shrinking?"),
    ("Farmers in the Tessaly valley grow purple saffron crocuses on terraced hillsides.",
     "Which flower is cultivated on the Tessaly terraces?"),
    ("The chess club of Brindlewood meets every Thursday evening in the public library.",
     "When does the Brindlewood chess group gather?"),
    ("Astronomers at Mount Kereru observatory discovered a comet with a green tail.",
     "What did the Kereru astronomers find in the sky?"),
    ("The bakery on Rue Delambre sells almond croissants only on Sunday mornings.",
     "When can you buy almond pastries on Rue Delambre?"),
    ("A family of beavers built a dam that flooded the hiking trail near Lake Ostrava.",
     "Why is the path by Lake Ostrava under water?"),
    ("The marathon in Port Elnor starts at the harbour and finishes in front of the cathedral.",
     "Where does the Port Elnor race end?"),
    ("Grandmother Sofia keeps her secret dumpling recipe in a tin box under the stairs.",
     "Where is Sofia's dumpling recipe hidden?"),
    ("The zoo in Caldera Springs welcomed twin snow leopard cubs in January.",
     "Which animals were born at the Caldera Springs zoo?"),
    ("Monks at the Saint Aldric abbey brew a dark beer flavoured with juniper berries.",
     "What kind of beer do the Saint Aldric monks make?"),
    ("The ferry to Inishmore is cancelled whenever the waves exceed four metres.",
     "When does the boat to Inishmore not sail?"),
    ("Volunteers planted ten thousand oak saplings along the motorway near Wexley.",
     "How many young trees were put in the ground near Wexley?"),
    ("The painter Ilse Vantongeren used crushed lapis lazuli to make her blue pigment.",
     "What did Vantongeren grind to obtain her blue paint?"),
    ("Hot air balloons fill the sky above Goreme at sunrise during the autumn festival.",
     "When do balloons fly over Goreme?"),
    ("The tailor in Bexhill repaired the mayor's ceremonial robe with golden thread.",
     "Who mended the mayor's robe in Bexhill?"),
    ("Honey from the Zuberi apiary tastes of eucalyptus and wild thyme.",
     "What flavour does Zuberi honey have?"),
    ("The school orchestra of Marlow Heath performed Vivaldi's Four Seasons in the town hall.",
     "Which piece did the Marlow Heath pupils play?"),
    ("A rare white moose was photographed crossing the road outside Kiruna last winter.",
     "What unusual animal was seen near Kiruna?"),
    ("The Torvald family has run the ski lodge on Mount Hekla for five generations.",
     "Who owns the Hekla ski lodge?"),
    ("Fishermen in Nazare land octopus that is grilled with garlic in the harbour taverns.",
     "What seafood do Nazare fishermen catch?"),
    ("The cathedral bells of Santa Lucia were recast after a lightning strike cracked them.",
     "Why were the Santa Lucia bells made again?"),
    ("Children in Aldersgate collect chestnuts in the park every October for a roasting contest.",
     "What do Aldersgate kids gather in autumn?"),
    ("The night train from Tromso to Narvik carries a dining car with reindeer stew.",
     "What is served on the Tromso to Narvik train?"),
    ("An underground lake in the Postojna caves is home to blind salamanders.",
     "Which creatures live in the Postojna cave lake?"),
    ("The windmill at Kinderdijk grinds rye flour for the local pancake house.",
     "What does the Kinderdijk mill produce?"),
]


def corpus() -> list[LoadedDocument]:
    paths = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md",
             ROOT / "tests/unit/rag/fixtures/multilingual.txt",
             ROOT / "src/gatewise/rag/chunkers/_spans.py", ROOT / "src/gatewise/rag/chunkers/code.py"]
    return [load_path(p) for p in paths]


def overwrite(doc: LoadedDocument, start: int, end: int, text: str) -> LoadedDocument:
    """The document with `text[start:end]` replaced by `text` (section offsets shifted); the
    span lies in one section."""
    sections = list(doc.sections)
    for i, s in enumerate(sections):
        if s.char_start <= start and end <= s.char_start + len(s.text):
            a, b = start - s.char_start, end - s.char_start
            sections[i] = dataclasses.replace(s, text=s.text[:a] + text + s.text[b:])
            shift = len(text) - (end - start)
            for j in range(i + 1, len(sections)):
                sections[j] = dataclasses.replace(sections[j],
                                                  char_start=sections[j].char_start + shift)
            return dataclasses.replace(doc, sections=tuple(sections))
    raise ValueError("span outside one section")


def plant(docs: list[LoadedDocument], window: Window, count: object
          ) -> tuple[list[LoadedDocument], list[tuple[str, str]]]:
    """Facts written over the last characters of over-window chunks of today's chunking (an
    English sentence takes fewer tokens than the code or German it replaces, so the chunk
    still holds it); kept are those that today's chunking, re-run, leaves beyond the window
    of the chunk holding them."""
    chunker = make_chunker("recursive", tokens=TOKENS, count=count)  # type: ignore[arg-type]
    spots: list[tuple[int, int]] = []
    for n, d in enumerate(docs):
        over = [c for c in chunker.chunk(d) if window.count(c.text) > window.tokens]
        spots.extend((n, int(c.metadata["char_end"])) for c in over
                     if len(c.text) > 600 and "\n\n" not in c.text[-200:])
    step = max(1, len(spots) // len(FACTS))
    chosen = spots[::step][:len(FACTS)]
    planted = list(docs)
    for (n, at), (fact, _) in sorted(zip(chosen, FACTS, strict=False), key=lambda x: -x[0][1]):
        sep = "\n# " if planted[n].sections[0].kind == "code" else " "
        text = planted[n].text
        start = text.rfind(" ", 0, at - len(sep + fact))
        planted[n] = overwrite(planted[n], start, at, sep + fact)
    tail: list[tuple[str, str]] = []
    chunks = [c for d in planted for c in chunker.chunk(d)]
    for fact, question in FACTS[:len(chosen)]:
        holder = next((c for c in chunks if fact in c.text), None)
        if holder is not None and window.count(holder.text[:holder.text.index(fact)]) \
                >= window.tokens:
            tail.append((fact, question))
    return planted, tail


async def ingest(docs: list[LoadedDocument], bounded: bool, windows: bool,
                 count: object) -> tuple[list[Chunk], np.ndarray, float, float, int]:
    model = MiniLMEmbedder(workers=2, windows=windows)
    emb = ThreadedEmbedder(model)
    await emb.embed(["warm up"])
    chunker = make_chunker("recursive", tokens=TOKENS, count=count,  # type: ignore[arg-type]
                           window=model.window if bounded else None)
    store = MemoryChunkStore()
    coll = CollectionRecord(id="b", name="b", owner="", embedder=emb.name, dimension=384,
                            created=0.0)
    await store.put_collection(coll)
    cpu = time.process_time()
    report = await Ingestor(store, emb, chunker, batch=64).ingest(coll, docs)
    cpu = time.process_time() - cpu
    change = await store.changes("b", 0)
    await emb.aclose()
    model.close()
    assert change.vectors is not None
    chars = sum(len(c.text) for c in change.added)
    return list(change.added), change.vectors, report.seconds, cpu, chars


def main() -> int:
    count = default_counter()
    docs = corpus()
    probe = MiniLMEmbedder()
    window = probe.window
    print(f"corpus: {len(docs)} documents, {sum(len(d.text) for d in docs) / 1e3:.0f} k "
          f"characters (docs/*.md, README.md, the multilingual fixture, two chunker modules)")
    print(f"\n{'chunker':<10} {'chunks':>7} {'over the window':>16} {'ms/chunk':>9} "
          f"{'bounded chunks':>15} {'over':>6} {'ms/chunk':>9}")
    for name in ("fixed", "sentence", "recursive", "code"):
        row = []
        for win in (None, window):
            ch = make_chunker(name, tokens=TOKENS, overlap=TOKENS // 8, count=count, window=win)
            cpu = time.process_time()
            chunks = [c for d in docs for c in ch.chunk(d)]
            ms = (time.process_time() - cpu) / len(chunks) * 1e3
            over = sum(window.count(c.text) > window.tokens for c in chunks)
            row.append((len(chunks), over / len(chunks), ms))
        print(f"{name:<10} {row[0][0]:>7} {row[0][1]:>16.1%} {row[0][2]:>9.2f} {row[1][0]:>15} "
              f"{row[1][1]:>6.1%} {row[1][2]:>9.2f}")
    prose = [c for d in docs if d.metadata.get("format") == "markdown"
             for c in make_chunker("recursive", tokens=TOKENS, count=count).chunk(d)]
    print(f"(recursive on the Markdown alone: "
          f"{sum(window.count(c.text) > window.tokens for c in prose) / len(prose):.1%} "
          f"of {len(prose)} chunks over the window)")

    planted, tail = plant(docs, window, count)
    questions = probe.embed([q for _, q in tail])
    print(f"\n{len(tail)} facts in a tail beyond {window.tokens} word pieces today")
    print(f"{'pairing':<28} {'chunks':>7} {'recall@5':>9} {'seconds':>8} {'chunks/s':>9} "
          f"{'k chars/s':>10} {'CPU ms/chunk':>13} {'CPU s':>6}")
    for label, bounded, windows in (("today (truncating)", False, False),
                                    ("windows only", False, True),
                                    ("bounded chunks + windows", True, True)):
        chunks, vectors, seconds, cpu, chars = asyncio.run(ingest(planted, bounded, windows,
                                                                  count))
        top = np.argsort(-(questions @ vectors.T), axis=1)[:, :5]
        found = sum(any(fact in chunks[int(i)].text for i in top[n])
                    for n, (fact, _) in enumerate(tail))
        print(f"{label:<28} {len(chunks):>7} {found / max(1, len(tail)):>9.0%} "
              f"{seconds:>8.2f} {len(chunks) / seconds:>9.1f} {chars / seconds / 1e3:>10.1f} "
              f"{cpu / len(chunks) * 1e3:>13.1f} {cpu:>6.1f}")
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
