"""Offline Presidio: each default recognizer finds valid values and rejects look-alikes that
fail their checksum; custom recognizers come from config; the NER path finds people, not
companies; the pattern-only path never loads a spaCy model."""

from __future__ import annotations

import itertools

import pytest

from gatewise.errors import ConfigError
from gatewise.guardrails.pii import CustomRecognizer, PIIDetector, build_analyzer


def found(detector: PIIDetector, text: str) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start:f.end]) for f in detector.find(text)]


@pytest.mark.parametrize(("text", "entity", "value"), [
    ("write to john.smith@example.com today", "EMAIL_ADDRESS", "john.smith@example.com"),
    ("reach me on +44 20 7123 4567 please", "PHONE_NUMBER", "+44 20 7123 4567"),
    ("my phone is (650) 253-0000", "PHONE_NUMBER", "(650) 253-0000"),
    ("card 4111 1111 1111 1111 was charged", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("send it to GB82 WEST 1234 5698 7654 32 now", "IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
    ("my ssn is 536-22-8726", "US_SSN", "536-22-8726"),
    ("the server at 10.0.0.12 is down", "IP_ADDRESS", "10.0.0.12"),
    ("btc wallet 1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "CRYPTO", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"),
    ("my bank account number is 12345678", "US_BANK_NUMBER", "12345678"),
    ("NHS number 943 476 5919", "UK_NHS", "943 476 5919"),
    ("NI number AB 12 34 56 C", "UK_NINO", "AB 12 34 56 C"),
    ("customer account ACC-123456 is frozen", "ACCOUNT_ID", "ACC-123456"),
])
def test_each_recognizer_finds_a_valid_value(patterns: PIIDetector, text: str, entity: str,
                                             value: str) -> None:
    assert (entity, value) in found(patterns, text)


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112 was charged",          # Luhn-invalid: not a card
    "send it to GB82 WEST 1234 5698 7654 33 now",    # IBAN checksum wrong
    "ssn 078-05-1120",                               # the famous invalid (published) SSN
    "write to john@example.notarealtld",             # no such top-level domain
    "order 12345678 shipped",                        # digits without account context
    "it costs 1234 dollars, pin 0000",
    "Hello, how can I help you today?",
])
def test_look_alikes_and_plain_text_are_not_pii(patterns: PIIDetector, text: str) -> None:
    assert found(patterns, text) == []


def test_nhs_number_with_a_wrong_check_digit_is_not_nhs(patterns: PIIDetector) -> None:
    assert ("UK_NHS", "943 476 5918") not in found(patterns, "NHS number 943 476 5918")


def test_ner_finds_a_person_name(ner: PIIDetector) -> None:
    assert found(ner, "My name is John Smith") == [("PERSON", "John Smith")]


def test_ner_finds_people_and_places_but_not_companies(ner: PIIDetector) -> None:
    text = "Please transfer to Maria Garcia in London. I bank with Barclays and use Microsoft Teams."
    hits = found(ner, text)
    assert ("PERSON", "Maria Garcia") in hits and ("LOCATION", "London") in hits
    assert not any(v in ("Barclays", "Microsoft", "Microsoft Teams") for _, v in hits)
    assert all(e not in ("ORGANIZATION", "NRP") for e, _ in hits)


def test_ner_ignores_lowercase_greetings(ner: PIIDetector) -> None:
    assert found(ner, "hello agent, thanks a lot") == []


def test_ner_mode_still_runs_the_pattern_recognizers(ner: PIIDetector) -> None:
    assert found(ner, "I am John Smith, card 4111 1111 1111 1111") == [
        ("PERSON", "John Smith"), ("CREDIT_CARD", "4111 1111 1111 1111")]


def test_pattern_only_engine_loads_no_spacy_model() -> None:
    analyzer = build_analyzer(use_ner=False)
    nlp = analyzer.nlp_engine.nlp["en"]  # type: ignore[attr-defined]
    assert nlp.pipe_names == []
    assert {r.name for r in analyzer.get_recognizers()}.isdisjoint({"SpacyRecognizer"})


def test_overlapping_hits_resolve_to_one_span(patterns: PIIDetector) -> None:
    text = "account ACC-123456 and card 4111111111111111"
    spans = [(f.start, f.end) for f in patterns.find(text)]
    assert spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_custom_recognizer_with_a_bad_regex_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="broken"):
        build_analyzer(use_ner=False, custom=[CustomRecognizer("broken", "X", ["(unclosed"])])


def test_detection_can_be_limited_to_some_entities() -> None:
    only_cards = PIIDetector(build_analyzer(use_ner=False, entities=["CREDIT_CARD"]),
                             entities=["CREDIT_CARD"])
    text = "mail a@example.com card 4111 1111 1111 1111"
    assert found(only_cards, text) == [("CREDIT_CARD", "4111 1111 1111 1111")]
