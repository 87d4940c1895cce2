"""Loaders read every supported format into located sections, keep the metadata a citation
needs, give stable ids, and refuse bad or hostile input with a clear 415/400."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatewise.errors import EmptyDocumentError, UnsupportedDocumentError
from gatewise.rag.loaders import (
    LoadFailure,
    detect_format,
    detect_language,
    load_bytes,
    load_path,
    load_paths,
)
from gatewise.rag.types import LoadedDocument

FIXTURES = Path(__file__).parent / "fixtures"


def offsets_agree(doc: LoadedDocument) -> None:
    text = doc.text
    for s in doc.sections:
        assert text[s.char_start:s.char_start + len(s.text)] == s.text


# -- format detection --------------------------------------------------------------------------

@pytest.mark.parametrize(("filename", "ctype", "data", "expected"), [
    ("a.md", None, b"# x", "markdown"),
    ("A.HTM", None, b"<p>x</p>", "html"),
    ("doc.pdf", None, b"%PDF-1.4", "pdf"),
    ("rows.jsonl", None, b"{}", "jsonl"),
    ("main.go", None, b"package main", "code"),
    ("notes.txt", None, b"hi", "text"),
    (None, "text/markdown; charset=utf-8", b"# x", "markdown"),
    (None, "application/octet-stream", b"%PDF-1.7 ...", "pdf"),
    (None, None, b"<!DOCTYPE html><html></html>", "html"),
    ("README", None, b"plain words", "text"),
])
def test_format_comes_from_extension_then_content_type_then_content(filename, ctype, data, expected):
    assert detect_format(data, filename=filename, content_type=ctype) == expected


@pytest.mark.parametrize(("filename", "ctype", "data"), [
    ("photo.png", None, b"\x89PNG\r\n"),
    ("report.docx", None, b"PK\x03\x04"),
    (None, "image/jpeg", b"\xff\xd8\xff"),
    ("blob", None, b"\x00\x01\x02\x03" * 100),
    ("latin1", None, "caf\xe9 cr\xe8me".encode("latin-1") + b" and more text here"),
])
def test_unknown_or_binary_types_are_415(filename, ctype, data):
    with pytest.raises(UnsupportedDocumentError) as err:
        load_bytes(data, filename=filename, content_type=ctype)
    assert err.value.status == 415


# -- text ---------------------------------------------------------------------------------------

def test_text_keeps_lines_and_strips_nul_and_control_characters():
    doc = load_bytes(b"\n\nFirst line\x00 here\r\nsecond\x07 line\n\n", filename="./notes/a.txt")
    assert doc.id == "notes/a.txt"
    assert doc.metadata["source"] == "notes/a.txt"
    assert doc.metadata["format"] == "text"
    assert doc.metadata["title"] == "First line here"
    (section,) = doc.sections
    assert section.text == "First line here\nsecond line"
    assert (section.start_line, section.end_line) == (3, 4)


def test_non_utf8_text_is_415_and_empty_text_is_400():
    with pytest.raises(UnsupportedDocumentError, match="UTF-8"):
        load_bytes(b"\xff\xfe\xfa broken", filename="a.txt")
    with pytest.raises(EmptyDocumentError) as err:
        load_bytes(b"  \n\t\n", filename="a.txt")
    assert err.value.status == 400
    with pytest.raises(EmptyDocumentError):
        load_bytes(b"<html><script>only()</script></html>", filename="a.html")


def test_a_file_that_is_mostly_nul_bytes_is_refused_as_binary():
    with pytest.raises(UnsupportedDocumentError, match="binary"):
        load_bytes(b"text\x00" * 50, filename="a.txt")


def test_ids_are_callers_then_source_then_content_hash():
    assert load_bytes(b"x y z", filename="a.txt", document_id="mine").id == "mine"
    assert load_bytes(b"x y z", filename="dir/../b/a.txt").id == "b/a.txt"
    anon = load_bytes(b"x y z", content_type="text/plain")
    assert anon.id.startswith("sha256:")
    assert anon.id == load_bytes(b"x y z", content_type="text/plain").id


def test_user_metadata_is_kept_and_wins():
    doc = load_bytes(b"hello there world", filename="a.txt", metadata={"team": "ops", "title": "T"})
    assert doc.metadata["team"] == "ops"
    assert doc.metadata["title"] == "T"


# -- markdown ------------------------------------------------------------------------------------

def test_markdown_sections_follow_headings_with_paths_lines_and_code():
    doc = load_path(FIXTURES / "guide.md")
    offsets_agree(doc)
    assert doc.metadata["title"] == "Gatewise Field Guide"  # front matter
    assert doc.metadata["format"] == "markdown"
    assert doc.metadata["language"] == "en"
    by_path = [(s.path, s.kind, s.start_line, s.end_line) for s in doc.sections]
    assert by_path == [
        ((), "prose", 5, 5),
        (("Installing",), "prose", 7, 9),
        (("Installing", "Linux"), "prose", 11, 13),
        (("Installing", "Linux"), "code", 15, 18),
        (("Installing", "macOS"), "prose", 20, 22),
        (("Running",), "prose", 24, 27),
        (("Running", "Health checks"), "prose", 29, 32),
    ]
    source = (FIXTURES / "guide.md").read_text().split("\n")
    for s in doc.sections:
        assert s.text == "\n".join(source[s.start_line - 1:s.end_line])
    code = doc.sections[3]
    assert code.text.startswith("```bash") and code.metadata["code_language"] == "bash"


def test_a_hash_inside_a_code_fence_is_not_a_heading():
    doc = load_bytes(b"# Top\n\n```\n# not a heading\n```\n\ntext\n", filename="a.md")
    assert [s.path for s in doc.sections] == [("Top",), ("Top",), ("Top",)]
    assert doc.metadata["title"] == "Top"


@pytest.mark.parametrize("data", [
    b"# a" + b" " * 50_000 + b"#x\n\ntext",              # quadratic for a lazy heading regex
    b"---\ntitle: " + b" " * 50_000 + b"x\n---\nbody",  # the same in front matter
    b"# " + b"[" * 50_000 + b"\n\ntext",                  # link syntax scanned from every [
])
def test_hostile_markdown_lines_load_in_linear_time(data):
    doc = load_bytes(data, filename="h.md")
    assert all(len(p) <= 200 for s in doc.sections for p in s.path)


def test_atx_closing_hashes_are_not_part_of_the_heading():
    doc = load_bytes(b"## Install ##\n\ntext\n\n## C#\n\nmore", filename="a.md")
    assert [s.path for s in doc.sections] == [("Install",), ("C#",)]


# -- html ----------------------------------------------------------------------------------------

def test_html_drops_script_style_nav_and_splits_by_heading():
    doc = load_path(FIXTURES / "page.html")
    offsets_agree(doc)
    assert doc.metadata["title"] == "Rate limits & budgets"
    text = doc.text
    for hidden in ("secret", "color: red", "Home", "alert"):
        assert hidden not in text
    paths = [(s.path, s.kind) for s in doc.sections]
    assert paths == [(("Rate limits",), "prose"), (("Rate limits", "Headers"), "prose"),
                     (("Rate limits", "Headers"), "code"), (("Rate limits", "Budgets"), "prose")]
    assert "Every key has a request rate and a token rate. Both reset each minute." in text
    assert '  -H "Authorization: Bearer sk-test"' in doc.sections[2].text  # pre keeps spaces
    assert doc.sections[0].start_line is not None


def test_deeply_nested_html_is_read_without_recursion():
    data = b"<div>" * 20_000 + b"deep text" + b"</div>" * 20_000  # 20x the recursion limit
    doc = load_bytes(data, filename="deep.html")
    assert doc.text == "deep text"


# -- pdf -----------------------------------------------------------------------------------------

def test_pdf_has_one_section_per_page_and_a_title():
    doc = load_path(FIXTURES / "manual.pdf")
    offsets_agree(doc)
    assert [s.page for s in doc.sections] == [1, 2]
    assert doc.metadata["title"] == "Operations Manual"
    assert doc.metadata["pages"] == 2
    assert "drains open streams" in doc.sections[0].text
    assert "object storage" in doc.sections[1].text


@pytest.mark.parametrize("data", [
    (FIXTURES / "truncated.pdf").read_bytes(),
    b"%PDF-1.4\n" + bytes(range(256)) * 4,
    b"%PDF-",
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF",
])
def test_a_broken_pdf_is_415_never_a_crash(data):
    with pytest.raises((UnsupportedDocumentError, EmptyDocumentError)) as err:
        load_bytes(data, filename="broken.pdf")
    assert err.value.status in (415, 400)


def test_a_pdf_named_file_that_is_not_a_pdf_is_415():
    with pytest.raises(UnsupportedDocumentError):
        load_bytes(b"just text", filename="fake.pdf")


def test_pdf_page_cap_refuses_huge_page_counts(monkeypatch):
    from gatewise.rag.loaders import pdf

    monkeypatch.setattr(pdf, "MAX_PAGES", 1)
    with pytest.raises(UnsupportedDocumentError, match="pages"):
        load_path(FIXTURES / "manual.pdf")


def _pdf_with_stream(content: bytes) -> bytes:
    """A one-page PDF whose content stream is `content`, Flate-compressed."""
    import zlib

    stream = zlib.compress(content, 9)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 5\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def test_a_pdf_decompression_bomb_is_refused_before_it_is_parsed():
    bomb = _pdf_with_stream(b"BT /F1 12 Tf 72 720 Td " + b"(A) Tj " * 1_300_000 + b"ET")
    assert len(bomb) < 50_000  # 9 MB of drawing instructions in a small file
    with pytest.raises(UnsupportedDocumentError, match="inflates"):
        load_bytes(bomb, filename="bomb.pdf")


def test_pdf_text_cap_stops_extraction(monkeypatch):
    from gatewise.rag.loaders import pdf

    monkeypatch.setattr(pdf, "MAX_PAGE_CHARS", 20)
    with pytest.raises(UnsupportedDocumentError, match="characters"):
        load_path(FIXTURES / "manual.pdf")


# -- code ----------------------------------------------------------------------------------------

def test_source_code_is_one_code_section_with_its_programming_language():
    doc = load_path(FIXTURES / "sample.go")
    assert doc.metadata["language"] == "go"
    assert doc.metadata["format"] == "code"
    assert doc.metadata["title"] == "sample.go"
    (section,) = doc.sections
    assert section.kind == "code"
    assert (section.start_line, section.end_line) == (1, 24)


# -- jsonl ---------------------------------------------------------------------------------------

def test_jsonl_records_become_record_sections_with_their_fields():
    doc = load_path(FIXTURES / "records.jsonl")
    offsets_agree(doc)
    assert doc.metadata["records"] == 3
    first, second, third = doc.sections
    assert first.kind == "record" and first.path == ("T-100",)
    assert first.metadata == {"priority": "high", "team": "ops", "record_id": "T-100"}
    assert second.text.startswith("Budget alerts") and second.metadata["resolved"] is True
    assert third.path == ("line 4",) and (third.start_line, third.end_line) == (4, 4)
    assert third.metadata == {"score": 0.5}


@pytest.mark.parametrize(("line", "problem"), [
    (b"not json", "not valid JSON"), (b"[1, 2]", "not a JSON object"), (b'{"x": 1}', "no text field")])
def test_jsonl_bad_lines_are_refused_with_their_line_number(line, problem):
    data = json.dumps({"text": "fine"}).encode() + b"\n" + line
    with pytest.raises(UnsupportedDocumentError, match=f"line 2.*{problem}|line 2 {problem}"):
        load_bytes(data, filename="r.jsonl")


# -- language ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "lang"), [
    ("The server is running and the queue is empty for now.", "en"),
    ("Der Server läuft und die Warteschlange ist nicht voll, das ist gut.", "de"),
    ("El servidor funciona y la cola de mensajes está vacía por ahora.", "es"),
    ("東京の天気は晴れです。明日は雨が降るでしょう。", "ja"),
    ("هل يعمل الخادم الآن؟ نعم، يعمل بشكل جيد.", "ar"),
    ("सर्वर अब चल रहा है। कल हम जाँच करेंगे।", "hi"),
    ("服务器正在运行。", "zh"),
    ("x1 y2", None),
])
def test_natural_language_is_guessed_cheaply(text, lang):
    assert detect_language(text) == lang


def test_load_paths_walks_directories_and_reports_failures(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\nalpha text")
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe bad")
    (tmp_path / "skip.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.md").write_text("hidden")
    items = list(load_paths([tmp_path]))
    assert [type(i).__name__ for i in items] == ["LoadedDocument", "LoadFailure"]
    failure = items[1]
    assert isinstance(failure, LoadFailure) and failure.id.endswith("b.txt")
    assert failure.error.status == 415
