"""Chunkers cut every format into chunks within the token budget, each locating itself
exactly in its document (`doc.text[char_start:char_end] == chunk.text`), following structure
where there is some, and splitting non-English text at its own sentence marks."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from gatewise.errors import InvalidRequestError
from gatewise.rag.chunkers import CHUNKERS, default_counter, make_chunker
from gatewise.rag.chunkers._spans import sentences
from gatewise.rag.loaders import load_bytes, load_path
from gatewise.rag.types import Chunk, LoadedDocument

FIXTURES = Path(__file__).parent / "fixtures"
COUNT = default_counter()


class BagOfWords:
    """A deterministic `TextEmbedder`: words hashed into 64 buckets, so sentences that share
    words are similar and sentences on another topic are not."""

    name = "bag-of-words"
    dimension = 64

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                word = word.strip(".,!?")
                if len(word) > 3:
                    out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def chunker(name: str, tokens: int = 48, overlap: int = 8):
    return make_chunker(name, tokens=tokens, overlap=overlap, count=COUNT, embedder=BagOfWords())


def check_invariants(doc: LoadedDocument, chunks: list[Chunk], budget: int) -> None:
    text = doc.text
    assert chunks, "a document with text gives at least one chunk"
    for ordinal, c in enumerate(chunks):
        m = c.metadata
        assert c.id == f"{doc.id}#{ordinal}" and c.ordinal == ordinal and c.document_id == doc.id
        assert text[m["char_start"]:m["char_end"]] == c.text
        assert c.text == c.text.strip() and c.text
        assert c.tokens == m["tokens"] == COUNT(c.text)
        assert c.tokens <= budget
        assert "section" in m
        for key, value in doc.metadata.items():
            assert m[key] == value
        if "start_line" in m:
            assert m["start_line"] <= m["end_line"]


FILES = ["guide.md", "page.html", "manual.pdf", "sample.py", "sample.go", "records.jsonl",
         "multilingual.txt"]


@pytest.mark.parametrize("name", CHUNKERS)
@pytest.mark.parametrize("filename", FILES)
@pytest.mark.parametrize("budget", [16, 64])
def test_every_chunker_keeps_the_span_and_budget_invariants(name, filename, budget):
    doc = load_path(FIXTURES / filename)
    check_invariants(doc, chunker(name, budget, budget // 4).chunk(doc), budget)


@pytest.mark.parametrize("name", CHUNKERS)
def test_text_without_spaces_or_punctuation_is_still_cut_within_budget(name):
    doc = load_bytes(("東京大阪名古屋" * 300 + " " + "x" * 3000).encode(), filename="a.txt")
    check_invariants(doc, chunker(name, 32, 4).chunk(doc), 32)


def test_make_chunker_refuses_bad_settings():
    with pytest.raises(InvalidRequestError):
        make_chunker("nope", tokens=64, count=COUNT)
    with pytest.raises(InvalidRequestError):
        make_chunker("fixed", tokens=64, overlap=64, count=COUNT)
    with pytest.raises(InvalidRequestError, match="embedder"):
        make_chunker("semantic", tokens=64, count=COUNT)


# -- fixed ---------------------------------------------------------------------------------------

def test_fixed_windows_are_full_and_overlap_by_about_the_overlap():
    words = " ".join(f"word{i}" for i in range(600))
    doc = load_bytes(words.encode(), filename="w.txt")
    chunks = chunker("fixed", 50, 10).chunk(doc)
    for a, b in itertools.pairwise(chunks):
        assert a.tokens > 40  # filled up to the budget, not cut early
        shared = a.metadata["char_end"] - b.metadata["char_start"]
        assert shared > 0
        assert 5 <= COUNT(doc.text[b.metadata["char_start"]:a.metadata["char_end"]]) <= 10
    assert chunks[-1].text.endswith("word599")


def test_fixed_without_overlap_tiles_the_text():
    doc = load_bytes(" ".join(["alpha beta gamma."] * 200).encode(), filename="w.txt")
    chunks = chunker("fixed", 40, 0).chunk(doc)
    assert " ".join(c.text for c in chunks) == doc.text


# -- sentences -----------------------------------------------------------------------------------

def split(text: str) -> list[str]:
    return [text[a:b] for a, b in sentences(text, 0, len(text))]


@pytest.mark.parametrize(("text", "expected"), [
    ("Die Anfrage dauerte 3.5 Sekunden, z.B. im Netz. Dr. Müller prüft das. Fertig.",
     ["Die Anfrage dauerte 3.5 Sekunden, z.B. im Netz.", "Dr. Müller prüft das.", "Fertig."]),
    ("東京の天気は晴れです。明日は雨が降るでしょう！本当ですか？はい。",  # noqa: RUF001
     ["東京の天気は晴れです。", "明日は雨が降るでしょう！", "本当ですか？", "はい。"]),  # noqa: RUF001
    ("هل يعمل الخادم الآن؟ نعم، يعمل بشكل جيد.", ["هل يعمل الخادم الآن؟", "نعم، يعمل بشكل جيد."]),
    ("सर्वर चल रहा है। कल जाँच करेंगे। सब ठीक है॥", ["सर्वर चल रहा है।", "कल जाँच करेंगे।", "सब ठीक है॥"]),
    ("¿Dónde está el registro? Está aquí. ¡Qué rápido! La Sra. García lo vio.",
     ["¿Dónde está el registro?", "Está aquí.", "¡Qué rápido!", "La Sra. García lo vio."]),
    ("Use e.g. the CLI. See Fig. 3 and J. R. R. Tolkien. Version 2.0 is out.",
     ["Use e.g. the CLI.", "See Fig. 3 and J. R. R. Tolkien.", "Version 2.0 is out."]),
    ('He said "stop." Then he left... Later (much later.) he came back',
     ['He said "stop."', "Then he left...", "Later (much later.) he came back"]),
    ("Steps:\n- install it\n- run it", ["Steps:", "- install it", "- run it"]),
])
def test_sentences_split_at_each_languages_marks(text, expected):
    assert split(text) == expected


@pytest.mark.parametrize("text", ["a" + "." * 100_000 + "b", "a" + ". " * 30_000, "e.g. " * 20_000])
def test_runs_of_sentence_marks_are_split_in_linear_time(text):
    doc = load_bytes(text.encode(), filename="dots.txt")
    check_invariants(doc, chunker("recursive", 256, 0).chunk(doc), 256)


def test_sentence_chunks_hold_whole_sentences_and_overlap_by_sentences():
    doc = load_path(FIXTURES / "multilingual.txt")
    chunks = chunker("sentence", 40, 12).chunk(doc)
    starts = {a for a, _ in sentences(doc.text, 0, len(doc.text))}
    ends = {b for _, b in sentences(doc.text, 0, len(doc.text))}
    for c in chunks:
        assert c.metadata["char_start"] in starts and c.metadata["char_end"] in ends
    assert any(a.metadata["char_end"] > b.metadata["char_start"]
               for a, b in itertools.pairwise(chunks))
    japanese = [c for c in chunks if "東京" in c.text]
    assert japanese and not japanese[0].text.startswith("Die")


# -- recursive -----------------------------------------------------------------------------------

def test_recursive_follows_headings_and_merges_small_siblings():
    doc = load_path(FIXTURES / "guide.md")
    chunks = chunker("recursive", 256).chunk(doc)
    sections = [c.metadata["section"] for c in chunks]
    # Small sections merged under the heading they share; the code block stays its own.
    assert sections == ["Installing", "Installing > Linux", "Installing > macOS", "Running"]
    code = chunks[1]
    assert code.text.startswith("```bash")
    assert (code.metadata["start_line"], code.metadata["end_line"]) == (15, 18)
    assert chunks[2].text.startswith("## macOS")
    assert chunks[0].metadata["start_line"] == 5 and chunks[0].metadata["end_line"] == 13


def test_recursive_keeps_sections_apart_when_they_are_not_small():
    body = "\n\n".join(f"## Part {i}\n\n" + " ".join([f"Sentence about part {i}."] * 12)
                       for i in range(3))
    doc = load_bytes(f"# Book\n\n{body}\n".encode(), filename="b.md")
    chunks = chunker("recursive", 120).chunk(doc)
    assert [c.metadata["section"] for c in chunks] == [
        "Book > Part 0", "Book > Part 1", "Book > Part 2"]


def test_recursive_never_crosses_a_pdf_page():
    doc = load_path(FIXTURES / "manual.pdf")
    chunks = chunker("recursive", 512).chunk(doc)
    assert [c.metadata["page"] for c in chunks] == [1, 2]
    assert all("end_page" not in c.metadata for c in chunks)


def test_recursive_keeps_one_record_per_chunk_with_its_fields():
    doc = load_path(FIXTURES / "records.jsonl")
    chunks = chunker("recursive", 256).chunk(doc)
    assert [c.metadata["section"] for c in chunks] == ["T-100", "T-101", "line 4"]
    assert chunks[0].metadata["priority"] == "high" and chunks[0].metadata["record_id"] == "T-100"
    assert chunks[1].metadata["resolved"] is True and "priority" not in chunks[2].metadata
    assert (chunks[2].metadata["start_line"], chunks[2].metadata["end_line"]) == (4, 4)


def test_recursive_cuts_a_long_section_at_paragraphs_first():
    paragraphs = [" ".join([f"Paragraph {i} talks about topic {i}."] * 6) for i in range(6)]
    doc = load_bytes("\n\n".join(paragraphs).encode(), filename="p.txt")
    chunks = chunker("recursive", 120).chunk(doc)
    for c in chunks:
        assert c.text.startswith("Paragraph") and c.text.endswith(".")
    assert len(chunks) < len(paragraphs)  # small paragraphs packed together
    assert sum(c.text.count("Paragraph") for c in chunks) == 36


def test_html_sections_carry_their_heading_and_source_lines():
    doc = load_path(FIXTURES / "page.html")
    chunks = chunker("recursive", 256).chunk(doc)
    assert {c.metadata["section"] for c in chunks} >= {"Rate limits", "Rate limits > Headers"}
    assert all("start_line" in c.metadata for c in chunks)


# -- code ----------------------------------------------------------------------------------------

def test_python_is_cut_at_functions_and_classes_with_exact_lines():
    doc = load_path(FIXTURES / "sample.py")
    chunks = chunker("code", 40).chunk(doc)
    source = (FIXTURES / "sample.py").read_text().split("\n")
    by_section = {c.metadata["section"]: c for c in chunks}
    assert "decorated" in by_section
    decorated = by_section["decorated"]
    assert decorated.text.startswith("# The parser below")  # the comment above comes along
    assert "@staticmethod" in decorated.text
    for c in chunks:
        lines = source[c.metadata["start_line"] - 1:c.metadata["end_line"]]
        assert "\n".join(lines).strip() == c.text
    assert any(c.metadata["section"].startswith("Parser") for c in chunks)


def test_a_class_too_big_for_one_chunk_is_opened_into_its_methods():
    doc = load_path(FIXTURES / "sample.py")
    chunks = chunker("code", 24).chunk(doc)
    sections = [c.metadata["section"] for c in chunks]
    assert "Parser.__init__" in sections and "Parser.feed" in sections


def test_a_whole_class_that_fits_stays_one_chunk():
    doc = load_path(FIXTURES / "sample.py")
    chunks = chunker("code", 256).chunk(doc)
    parser = [c for c in chunks if "class Parser" in c.text]
    assert len(parser) == 1 and "def feed" in parser[0].text and "Parser" in parser[0].metadata["symbols"]


def test_brace_languages_are_cut_at_top_level_blocks():
    doc = load_path(FIXTURES / "sample.go")
    chunks = chunker("code", 64).chunk(doc)
    source = (FIXTURES / "sample.go").read_text().split("\n")
    for c in chunks:
        assert "\n".join(source[c.metadata["start_line"] - 1:c.metadata["end_line"]]).strip() == c.text
    starts = [c.text.split("\n")[0] for c in chunks]
    assert "// Say returns the greeting with braces in a string: \"{}\"." in starts
    assert "func main() {" in starts
    say = next(c for c in chunks if c.text.startswith("// Say"))
    assert say.text.endswith("}") and say.metadata["section"] == "Say"


def test_c_keeps_includes_apart_and_names_functions_with_their_comments():
    src = (b"#include <stdio.h>\n#include <string.h>\n\n/* Adds two numbers. */\n"
           b"static int add(int a, int b) {\n    return a + b;\n}\n\n// Entry point.\n"
           b"int main(void) {\n    return add(1, 2);\n}\n")
    chunks = chunker("code", 24, 0).chunk(load_bytes(src, filename="m.c"))
    assert [(c.metadata["section"], c.metadata["start_line"], c.metadata["end_line"]) for c in chunks] \
        == [("", 1, 2), ("add", 4, 7), ("main", 9, 12)]


def test_python_that_does_not_parse_falls_back_to_the_heuristic():
    src = b"def broken(:\n    pass\n\n\ndef fine():\n    return 1\n"
    doc = load_bytes(src, filename="x.py")
    chunks = chunker("code", 8, 0).chunk(doc)
    assert [c.text.split("\n")[0] for c in chunks] == ["def broken(:", "def fine():"]


def test_recursive_picks_code_for_source_files():
    doc = load_path(FIXTURES / "sample.py")
    assert [c.text for c in chunker("recursive", 40).chunk(doc)] == [
        c.text for c in chunker("code", 40).chunk(doc)]


# -- semantic ------------------------------------------------------------------------------------

def test_semantic_breaks_where_the_topic_changes():
    cats = " ".join(f"Cats purr loudly and cats sleep often, cats number {i}." for i in range(4))
    rockets = " ".join(f"Rockets launch quickly and rockets burn fuel, rockets number {i}." for i in range(4))
    doc = load_bytes(f"{cats} {rockets}".encode(), filename="t.txt")
    embedder = BagOfWords()
    chunks = make_chunker("semantic", tokens=200, count=COUNT, embedder=embedder).chunk(doc)
    assert [c.text.count("Cats") + c.text.count("cats") > 0 for c in chunks] == [True, False]
    assert chunks[0].text.endswith("cats number 3.")
    assert embedder.calls == [8]  # all sentences embedded in one batch
