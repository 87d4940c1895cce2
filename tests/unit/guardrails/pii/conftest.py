"""One analyzer per mode for the whole session: building one takes about a second (the NER
model load), and the detectors are stateless, so sharing them changes nothing a test checks."""

from __future__ import annotations

import pytest

from gatewise.guardrails.pii import CustomRecognizer, PIIDetector, build_analyzer

ACCOUNT = CustomRecognizer("bank_account_id", "ACCOUNT_ID", [r"\bACC-\d{6}\b"], context=["account"])


@pytest.fixture(scope="session")
def patterns() -> PIIDetector:
    return PIIDetector(build_analyzer(use_ner=False, custom=[ACCOUNT]))


@pytest.fixture(scope="session")
def ner() -> PIIDetector:
    return PIIDetector(build_analyzer(use_ner=True))
