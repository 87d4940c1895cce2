"""Citation markers: the grammar, markers that point at nothing, spans, and the stream that
holds text back across chunk boundaries so an invalid marker never reaches the client."""

from __future__ import annotations

import itertools

import msgspec
import pytest

from gatewise.rag.citations import (
    NOT_FOUND,
    CitationStreamer,
    Source,
    annotations_json,
    attribute,
    citations_json,
    resolve,
    source_label,
    sources_block,
    strip_spans,
)
from gatewise.rag.types import Chunk, Hit
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice, Delta


def hit(doc: str, ordinal: int = 0, text: str = "text", score: float = 1.0,
        **meta: object) -> Hit:
    chunk = Chunk(id=f"{doc}#{ordinal}", document_id=doc, ordinal=ordinal, text=text,
                  tokens=len(text.split()), metadata=meta)
    return Hit(chunk=chunk, score=score, rank=ordinal)


HITS = [hit("guide.md", 0, "Paris is the capital of France.", 0.9, title="Guide",
            section="Europe > France", start_line=3, end_line=5, char_start=10, char_end=41),
        hit("atlas.pdf", 2, "Berlin is the capital of Germany.", 0.7, title="Atlas", page=12,
            source="https://example.org/atlas.pdf"),
        hit("notes.txt", 1, "Rome is in Italy.", 0.5)]


# -- grammar ---------------------------------------------------------------------------------

@pytest.mark.parametrize("marker", ["[1]", "[1, 2]", "[1,2]", "[1; 2]", "[1-2]", "[1\u20132]",
                                    "[source 1]", "[Sources 1, 2]", "[ref 2]", "[ 1 ]"])
def test_every_spelling_of_a_valid_marker_is_kept_as_written(marker: str) -> None:
    text = f"Paris and Berlin {marker}."
    clean, cited, dropped = resolve(text, HITS)
    assert clean == text
    assert dropped == 0
    assert cited


def test_adjacent_markers_each_cite_their_source() -> None:
    clean, cited, _dropped = resolve("Capitals [1][2].", HITS)
    assert clean == "Capitals [1][2]."
    assert [c.index for c in cited] == [1, 2]
    assert cited[0].spans == [(9, 12)] and cited[1].spans == [(12, 15)]


def test_a_range_expands_to_every_source_in_it() -> None:
    _, cited, _ = resolve("All three [1-3].", HITS)
    assert [c.index for c in cited] == [1, 2, 3]


@pytest.mark.parametrize("text", ["In [2024] it rained.", "see [1-100] of the table",
                                  "a [note] here", "an [empty] one", "[]", "x[1 and]",
                                  "[[x]]", "a [1\n] b"])
def test_bracketed_text_that_is_no_marker_stays_as_it_is(text: str) -> None:
    clean, cited, dropped = resolve(text, HITS)
    assert (clean, cited, dropped) == (text, [], 0)


def test_markers_inside_code_are_code() -> None:
    text = "Use `arr[9]` or\n```python\nx = y[7]\n```\nas shown [1]."
    clean, cited, dropped = resolve(text, HITS)
    assert clean == text
    assert dropped == 0
    assert [c.index for c in cited] == [1]


# -- markers pointing at nothing -------------------------------------------------------------

def test_a_marker_naming_no_source_is_removed_with_its_space_and_counted() -> None:
    clean, cited, dropped = resolve("Paris [7]. Berlin [2].", HITS)
    assert clean == "Paris. Berlin [2]."
    assert dropped == 1
    assert [c.index for c in cited] == [2]


def test_zero_is_no_source() -> None:
    assert resolve("Paris [0].", HITS)[:3] == ("Paris.", [], 1)


def test_a_marker_naming_some_sources_keeps_only_those() -> None:
    clean, cited, dropped = resolve("Both [1, 9] and [2-5].", HITS)
    assert clean == "Both [1] and [2, 3]."
    assert dropped == 3
    assert [c.index for c in cited] == [1, 2, 3]


def test_without_sources_every_marker_goes() -> None:
    clean, cited, dropped = resolve("Paris [1][2] is big [3].", [])
    assert (clean, cited, dropped) == ("Paris is big.", [], 3)


# -- spans and output shapes -----------------------------------------------------------------

def test_spans_point_at_the_markers_in_the_cleaned_text() -> None:
    clean, cited, _ = resolve("A [9] b [1] c [2][1].", HITS)
    assert clean == "A b [1] c [2][1]."
    one, two = cited
    assert [clean[s:e] for s, e in one.spans] == ["[1]", "[1]"]
    assert [clean[s:e] for s, e in two.spans] == ["[2]"]
    assert strip_spans(clean, cited) == "A b  c ."


def test_annotations_have_openais_url_citation_shape() -> None:
    clean, cited, _ = resolve("Paris [1]. Berlin [2].", HITS, collection="geo")
    ann = annotations_json(cited)
    assert ann[0] == {"type": "url_citation", "url_citation": {
        "start_index": 6, "end_index": 9, "url": "gatewise://collection/geo/guide.md#0",
        "title": "Guide > Europe > France (lines 3-5)"}}
    # A document with its own web address is cited by it.
    assert ann[1]["url_citation"]["url"] == "https://example.org/atlas.pdf"
    assert clean[ann[1]["url_citation"]["start_index"]:ann[1]["url_citation"]["end_index"]] == "[2]"


def test_the_citations_list_maps_each_source_to_its_chunk() -> None:
    _, cited, _ = resolve("Berlin [2], Paris [1], again [2].", HITS, collection="geo")
    out = citations_json(cited, "geo")
    assert [c["index"] for c in out] == [2, 1]
    assert out[0] == {
        "index": 2, "chunk_id": "atlas.pdf#2", "document_id": "atlas.pdf", "collection": "geo",
        "source": "https://example.org/atlas.pdf", "title": "Atlas", "section": None,
        "page": 12, "start_line": None, "end_line": None, "char_start": None,
        "char_end": None, "score": 0.7, "url": "https://example.org/atlas.pdf",
        "text": "Berlin is the capital of Germany.", "inferred": False}
    assert out[1]["section"] == "Europe > France"
    assert (out[1]["char_start"], out[1]["char_end"]) == (10, 41)


def test_long_chunks_are_cited_with_a_short_snippet() -> None:
    long = hit("big", 0, "word " * 200)
    _, cited, _ = resolve("x [1]", [long])
    assert len(citations_json(cited)[0]["text"]) <= 241


def test_the_prompt_numbers_sources_with_what_a_citation_needs() -> None:
    block = sources_block([Source(h) for h in HITS[:2]] + [Source(HITS[2], "careful")])
    assert block.splitlines()[0] == "[1] Guide > Europe > France (lines 3-5)"
    assert "[2] Atlas (page 12)\nBerlin is the capital of Germany." in block
    assert "[3] notes.txt\n(careful)\nRome is in Italy." in block
    assert source_label(HITS[2]) == "notes.txt"


# -- streaming -------------------------------------------------------------------------------

def chunk(content: str | None = None, finish: str | None = None, index: int = 0,
          role: bool = False) -> ChatCompletionChunk:
    return ChatCompletionChunk(id="c1", created=1, model="m", choices=[ChunkChoice(
        index=index, delta=Delta(role="assistant" if role else None, content=content),
        finish_reason=finish)])


def run(streamer: CitationStreamer, pieces: list[str], *, finish: bool = True
        ) -> tuple[list[str], list[ChatCompletionChunk]]:
    """The text each chunk the client sees carries, and those chunks."""
    out: list[ChatCompletionChunk] = []
    out += streamer.apply(chunk("", role=True))
    for p in pieces:
        out += streamer.apply(chunk(p))
    if finish:
        out += streamer.apply(chunk(finish="stop"))
    out += streamer.finish()
    texts = [c.choices[0].delta.content or "" for c in out if c.choices]
    return texts, out


ANSWER = "Paris [1][7] and Berlin [2, 8]; code `a[3]` stays [9]. End [3]."
CLEAN = "Paris [1] and Berlin [2]; code `a[3]` stays. End [3]."


def splits(text: str) -> list[list[str]]:
    """Every way of cutting `text` in two and three pieces, plus one character at a time."""
    out = [[text[:i], text[i:]] for i in range(len(text) + 1)]
    out += [[text[:i], text[i:j], text[j:]]
            for i, j in itertools.combinations(range(0, len(text) + 1, 3), 2)]
    out.append(list(text))
    return out


@pytest.mark.parametrize("pieces", splits(ANSWER))
def test_a_stream_is_cleaned_exactly_like_the_whole_text_wherever_it_is_cut(
        pieces: list[str]) -> None:
    texts, _ = run(CitationStreamer(HITS), pieces)
    assert "".join(texts) == CLEAN == resolve(ANSWER, HITS).text


def test_no_piece_of_an_invalid_marker_ever_reaches_the_client() -> None:
    texts, _ = run(CitationStreamer(HITS), list("See [7] and [1]."))
    assert not any("7" in t for t in texts)
    assert "".join(texts) == "See and [1]."


def test_text_is_held_only_while_it_may_still_be_a_marker() -> None:
    s = CitationStreamer(HITS)
    s.apply(chunk("", role=True))
    assert s.apply(chunk("Paris "))[0].choices[0].delta.content == "Paris"  # the space waits
    assert s.apply(chunk("[1"))[0].choices[0].delta.content == ""
    assert s.apply(chunk("] is"))[0].choices[0].delta.content == " [1] is"
    assert s.apply(chunk(" [the"))[0].choices[0].delta.content == " [the"  # cannot be one


def test_the_finishing_chunk_carries_annotations_and_the_last_carries_citations() -> None:
    seen: list[tuple[str, int]] = []

    def finalize(text: str, cited: list, dropped: int) -> dict:
        seen.append((text, dropped))
        return {"grounded": True}

    texts, out = run(CitationStreamer(HITS, collection="geo", finalize=finalize),
                     ["Paris [1", "] [5]"])
    assert "".join(texts) == "Paris [1]"
    final = out[-1]
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].delta.annotations == annotations_json(resolve("Paris [1]", HITS,
                                                                          collection="geo")[1])
    assert [c["chunk_id"] for c in final.citations] == ["guide.md#0"]
    assert final.rag == {"grounded": True}
    assert seen == [("Paris [1]", 1)]
    # Only the last chunk is decorated; on the wire every other chunk looks as before.
    for c in out[:-1]:
        assert b"citations" not in msgspec.json.encode(c)


def test_a_stream_that_ends_without_finishing_releases_what_it_held() -> None:
    texts, out = run(CitationStreamer(HITS), ["Paris [", "1"], finish=False)
    assert "".join(texts) == "Paris [1"
    assert out[-1].citations == []


def test_each_choice_is_tracked_on_its_own() -> None:
    s = CitationStreamer(HITS)
    out = s.apply(chunk("A [", index=0)) + s.apply(chunk("B [2", index=1))
    out += s.apply(chunk("1]", index=0)) + s.apply(chunk("]", index=1))
    out += s.apply(chunk(finish="stop", index=0))
    assert out[-1].citations is msgspec.UNSET  # choice 1 is still open
    out += s.apply(chunk(finish="stop", index=1))
    by_choice: dict[int, str] = {}
    for c in out:
        for ch in c.choices:
            by_choice[ch.index] = by_choice.get(ch.index, "") + (ch.delta.content or "")
    assert by_choice == {0: "A [1]", 1: "B [2]"}
    assert [c["index"] for c in out[-1].citations] == [1, 2]


def test_the_not_found_sentence_passes_untouched() -> None:
    texts, _ = run(CitationStreamer([]), [NOT_FOUND])
    assert "".join(texts) == NOT_FOUND


# -- attribution when the model wrote no marker ----------------------------------------------

def shares_a_capital(sentence: str, text: str) -> bool:
    return any(w in text for w in ("Paris", "Berlin", "Rome") if w in sentence)


def test_an_answer_without_markers_is_attributed_sentence_by_sentence() -> None:
    text = "Berlin is German.\nParis is French! Bananas are yellow."
    cited = attribute(text, HITS, shares_a_capital, collection="geo")
    assert [(c.index, c.inferred) for c in cited] == [(2, True), (1, True)]
    assert [text[s:e] for s, e in cited[0].spans] == ["Berlin is German."]
    assert [text[s:e] for s, e in cited[1].spans] == ["Paris is French!"]
    assert citations_json(cited)[0]["inferred"] is True


def test_a_stream_without_markers_gets_inferred_citations_at_its_end() -> None:
    texts, out = run(CitationStreamer(HITS, supports=shares_a_capital), ["Paris is ", "big."])
    assert "".join(texts) == "Paris is big."
    final = out[-1]
    assert [c["index"] for c in final.citations] == [1]
    assert final.citations[0]["inferred"] is True
    [ann] = final.choices[0].delta.annotations
    assert (ann["url_citation"]["start_index"], ann["url_citation"]["end_index"]) == (0, 13)


def test_a_stream_with_markers_is_never_attributed() -> None:
    _, out = run(CitationStreamer(HITS, supports=shares_a_capital), ["Paris [2]."])
    assert [c["index"] for c in out[-1].citations] == [2]
    assert out[-1].citations[0]["inferred"] is False
