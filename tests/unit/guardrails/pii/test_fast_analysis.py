"""`PIIDetector` runs Presidio's analysis step by step, leaving out work that cannot change the
answer (the NLP pass when nothing was found, the phone matcher on texts with too few digits,
the e-mail pattern outside the words around an `@`). The specification: its findings are
exactly what `AnalyzerEngine.analyze` gives, cleaned the same way, on the seeded canary set
and on texts built to sit on each shortcut's edge."""

from __future__ import annotations

import pytest

from gatewise.guardrails.pii import PIIDetector
from gatewise.guardrails.pii.engine import Finding, _merge_overlaps, _min_phone_digits, _plausible
from tests.pii_canaries import canaries

EDGES = [
    "", "   ", "hi", "You are a helpful assistant.",
    "call 999", "call 4567 now", "ext +1 5 now", "+290 1234", "dial 0800 123 4567 or +44 20 7123 4567",
    "a@b", "@", "x @ y", "write to\tjohn.smith@example.com\nplease", "mail:john@example.com,jane@example.org",
    "@@@@ jane..doe@@example.com", "a" * 300 + "@" + "b" * 300 + ".com",
    "(jane@example.com)", "j\u00f6rg@b\u00fccher.de", "name@localhost", "phone 0123456789, 020 7123 4567",
    "4111 1111 1111 1111 and 4111-1111-1111-1112", "IBAN GB82 WEST 1234 5698 7654 32, SSN 536-22-8726",
    "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660 arabic-indic digits",
    "server 10.0.0.12 and ::1 and fe80::1%eth0", "my account ACC-123456 please", "account 12345678",
]


def reference(detector: PIIDetector, text: str) -> list[Finding]:
    """What `find` did before: `AnalyzerEngine.analyze` whole, then the same clean-up."""
    if not text or text.isspace():
        return []
    results = detector._analyzer.analyze(text, language="en", entities=detector._entities,
                                         score_threshold=detector._threshold)
    return _merge_overlaps([Finding(r.start, r.end, r.entity_type, r.score) for r in results
                            if _plausible(r.entity_type, text[r.start:r.end])])


def texts() -> list[str]:
    seen = dict.fromkeys(EDGES)
    for c in canaries()[::3]:
        seen.setdefault(c.text, None)
        seen.setdefault(f"Customer note: {c.value}.", None)
    return list(seen)


def test_findings_equal_presidios_own_analysis(patterns: PIIDetector) -> None:
    for text in texts():
        assert patterns.find(text) == reference(patterns, text), text


@pytest.mark.parametrize("text", EDGES[:12])
def test_findings_equal_presidios_own_analysis_with_ner(ner: PIIDetector, text: str) -> None:
    assert ner.find(text) == reference(ner, text)


def test_the_phone_shortcut_needs_fewer_digits_than_any_valid_number() -> None:
    import phonenumbers

    fewest = _min_phone_digits(("GB", "US"))
    assert 1 <= fewest <= 4
    # A valid number with the fewest digits any region allows is still long enough.
    shortest = min(
        len(str(m.country_code)) + min(m.general_desc.possible_length or (99,))
        for r in phonenumbers.SUPPORTED_REGIONS
        if (m := phonenumbers.PhoneMetadata.metadata_for_region(r)) is not None and m.general_desc)
    assert fewest <= shortest


def test_the_email_recognizer_finds_what_its_pattern_finds_over_the_whole_text(
        patterns: PIIDetector) -> None:
    from presidio_analyzer import PatternRecognizer, RecognizerResult

    email = next(r for r in patterns._recognizers if "EMAIL_ADDRESS" in r.supported_entities)
    assert isinstance(email, PatternRecognizer)

    def spans(results: list[RecognizerResult]) -> list[tuple[int, int, float]]:
        return sorted((r.start, r.end, r.score) for r in results)

    checked = 0
    for text in texts():
        whole = PatternRecognizer.analyze(email, text, ["EMAIL_ADDRESS"])
        assert spans(email.analyze(text, ["EMAIL_ADDRESS"], None)) == spans(whole), text
        checked += bool(whole)
    assert checked > 20
