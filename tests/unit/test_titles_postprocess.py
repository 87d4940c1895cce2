"""What a model writes becomes a bare title (`gatewise.titles.postprocess`): one line, no
surrounding quotes or label, no trailing period, cut on a word boundary; streamed deltas spell
the same title."""

from __future__ import annotations

import pytest

from gatewise.titles.postprocess import StreamCleaner, clean_title, truncate


@pytest.mark.parametrize(("raw", "title"), [
    ("Add SSO login for enterprise workspaces", "Add SSO login for enterprise workspaces"),
    ('"Add SSO login."', "Add SSO login"),
    ("“Add SSO login”", "Add SSO login"),
    ("'Add SSO login'", "Add SSO login"),
    ("**Add SSO login**", "Add SSO login"),
    ("Title: Add SSO login.", "Add SSO login"),
    ("Suggested title - Add SSO login", "Add SSO login"),
    ("  \n\nAdd SSO login\nThis title names the capability.", "Add SSO login"),
    ("Add   SSO\tlogin...", "Add SSO login"),
    ("Fix crash on v2.1 upload", "Fix crash on v2.1 upload"),
    ("", ""),
    ('""', ""),
])
def test_a_model_answer_becomes_a_bare_title(raw: str, title: str) -> None:
    assert clean_title(raw, 80) == title


def test_a_long_title_is_cut_on_a_word_boundary_without_a_dangling_mark() -> None:
    raw = "Add single sign-on, for enterprise workspaces, with SCIM provisioning"
    assert clean_title(raw, 40) == "Add single sign-on, for enterprise"
    assert len(clean_title(raw, 40)) <= 40
    assert clean_title(raw, 19) == "Add single sign-on"  # the comma after the cut goes too
    assert truncate("Internationalisation support", 10) == "Internatio"  # one word: cut in it


def test_a_cut_title_does_not_end_on_a_dangling_small_word() -> None:
    raw = "Add multi-step verification for every member of the workspace"
    assert clean_title(raw, 60) == "Add multi-step verification for every member"
    assert clean_title("Sign in with the company identity provider", 14) == "Sign in"
    assert clean_title("Export to CSV", 80) == "Export to CSV"  # not cut: left alone


def test_a_title_exactly_at_the_limit_is_kept_whole() -> None:
    assert clean_title("Add SSO login", 13) == "Add SSO login"
    assert clean_title("Add SSO login", 12) == "Add SSO"


def _stream(pieces: list[str], max_length: int) -> tuple[list[str], str]:
    cleaner = StreamCleaner(max_length)
    out = [d for p in pieces if (d := cleaner.feed(p))]
    rest = cleaner.finish()
    if rest:
        out.append(rest)
    return out, cleaner.title


@pytest.mark.parametrize(("pieces", "max_length"), [
    (["Add ", "SSO ", "login ", "for ", "enterprise ", "workspaces"], 80),
    (['"', "Add", " SSO", " login", '."'], 80),
    (["Title", ": ", "Add ", "SSO ", "login"], 80),
    (["Title ", "- ", "Add ", "SSO"], 80),
    (["Add single sign-on, ", "for ", "enterprise ", "workspaces, ", "with ", "SCIM"], 40),
    (["Add SSO login\n", "Because users asked."], 80),
    (["Fix crash on v2.", "1 upload"], 80),
])
def test_streamed_deltas_spell_the_final_title(pieces: list[str], max_length: int) -> None:
    deltas, title = _stream(pieces, max_length)
    assert "".join(deltas) == title == clean_title("".join(pieces), max_length)
    assert all(deltas)


def test_a_word_is_held_back_until_it_is_complete() -> None:
    cleaner = StreamCleaner(80)
    assert cleaner.feed("Add") == ""  # may still grow, or be a label
    assert cleaner.feed(" SS") == "Add"
    assert cleaner.feed("O login") == " SSO"
    assert cleaner.finish() == " login"


def test_nothing_after_the_first_line_is_streamed() -> None:
    cleaner = StreamCleaner(80)
    assert cleaner.feed("Add SSO\n") == "Add SSO"
    assert cleaner.feed("More words here ") == ""
    assert cleaner.finish() == ""
    assert cleaner.title == "Add SSO"
