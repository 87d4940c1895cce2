"""The names layer: person names found where the small spaCy model has no sentence to go on
(system prompts, line starts, JSON values), ordinary capitalised phrases left alone, and
overlapping hits merged so no part of a value goes out unmasked."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewise.guardrails.pii import PIIDetector
from gatewise.guardrails.pii.engine import NER_MODEL
from gatewise.guardrails.pii.names import NameGazetteer, default_gazetteer, fold

DATA = Path(__file__).parents[4] / "src" / "gatewise" / "guardrails" / "data"


@pytest.fixture(scope="module")
def gazetteer() -> NameGazetteer:
    return default_gazetteer(NER_MODEL)


def names(g: NameGazetteer, text: str) -> list[str]:
    return [text[h.start:h.end] for h in g.find(text)]


@pytest.mark.parametrize(("text", "name"), [
    ("You are assisting Nadia Petrovic, a premium client.", "Nadia Petrovic"),   # issue 11
    ("Priya Raghunathan asked about her loan last week.", "Priya Raghunathan"),  # issue 11
    ('{"customer": "Wei Zhang", "status": "active"}', "Wei Zhang"),
    ("Account holder: Mateus Oliveira\nSegment: retail", "Mateus Oliveira"),
    ("Thank You Priya Raghunathan", "Priya Raghunathan"),
    ("Dr Ahmed Al-Farsi will call back.", "Ahmed Al-Farsi"),
    ("The file of Ana de la Cruz is closed.", "Ana de la Cruz"),
])
def test_names_are_found_without_sentence_context(gazetteer: NameGazetteer, text: str, name: str) -> None:
    assert names(gazetteer, text) == [name]


@pytest.mark.parametrize("text", [
    "The Grace Period applies to the Premium Account.",
    "Thank You for calling the Customer Service Team.",
    "Open Microsoft Teams and click Change Account Type.",
    "hello priya, thanks",          # lower case: not this layer's business
    "PRIYA RAGHUNATHAN",            # all capitals: neither
])
def test_ordinary_capitalised_phrases_are_not_names(gazetteer: NameGazetteer, text: str) -> None:
    assert names(gazetteer, text) == []


def test_everyday_turns_hold_almost_no_names(gazetteer: NameGazetteer) -> None:
    lines = [ln for ln in (DATA / "everyday.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    flagged = [ln for ln in lines if gazetteer.find(ln)]
    assert len(flagged) <= len(lines) // 200, flagged


def test_folding_matches_accented_and_cyrillic_spellings() -> None:
    assert fold("Petrović") == fold("Petrovic") == "petrovic"
    assert fold("Иванова") == "ivanova"


@pytest.mark.parametrize(("text", "name"), [
    ("You are assisting Nadia Petrovic, a premium client.", "Nadia Petrovic"),
    ('{"holder": "Siobhan O\'Sullivan", "balance": 1520.33}', "Siobhan O'Sullivan"),
    ("Thanks, Maria Garcia. I have found your account.", "Maria Garcia"),
])
def test_the_ner_detector_finds_names_in_any_message(ner: PIIDetector, text: str, name: str) -> None:
    assert ("PERSON", name) in [(f.entity, text[f.start:f.end]) for f in ner.find(text)]


def test_overlapping_hits_merge_so_no_part_of_a_value_is_left(ner: PIIDetector) -> None:
    # The last ten digits of an international number pass the NHS check: one span covers all.
    text = "The phone number supplied was +234 803 901 1523; it matched."
    [f] = ner.find(text)
    assert text[f.start:f.end] == "+234 803 901 1523"
