"""The trained injection model, cached on disk so a process start does not retrain it.

Training (`detector.train_model`) reads every packaged corpus and fits the classifier once, then
once more per benign source to calibrate its floor (leave one source out), plus the embedding head
when it is installed: 10-20 s on an idle core, much more on a loaded one, in every process that
loads the guard. The result is a pure function of the training samples and the code, so it is
stored under a key made of both:
sha256 over `FORMAT_VERSION`, the gatewise version, whether the embedding head was asked for and
every training sample (text, label, source, family, category). A different corpus, a new release
or a new format misses and retrains.

Safety: a writable cache directory must not become code execution, so the file is JSON (msgspec,
typed), never pickle; every field is type-checked on load and the arrays' shapes and values are
validated; anything wrong (missing, truncated, tampered, another key) means retrain and
overwrite. Written atomically (a temporary file in the same directory, then `os.replace`), mode
0600, in a 0700 directory. The similarity index is not stored: it is rebuilt from the samples
(cheaper than reading its postings back). `detector.train_model` itself stays uncached: the
leave-one-source-out evaluation needs fresh models.

The corpus itself (`corpus.corpus()`: a few seconds of YAML, JSON and Python-literal parsing over
a dozen packages) is cached the same way (`cached_samples`), keyed by what it is read from: the
installed version of every source package, the project's data files and the reader code
(`corpus.py`, `sources.py`), so the model key above can be computed without parsing anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec

from gatewise.config.paths import write_private
from gatewise.guardrails.injection.classifier import NaiveBayesClassifier
from gatewise.guardrails.injection.sample import Sample

FORMAT_VERSION = 2  # 2: benign texts joined to length train both learned layers
FILE_PREFIX = "injection-model-"
CORPUS_PREFIX = "injection-corpus-"
# (weights, bias, floor, model id) -> the embedding layer, or ValueError when they do not fit it
SemanticFactory = Callable[[list[float], float, float, str], object]


class _Head(Protocol):
    @property
    def model_id(self) -> str: ...
    @property
    def weights(self) -> Iterable[float]: ...
    @property
    def bias(self) -> float: ...
    @property
    def floor(self) -> float: ...


class _Model(Protocol):
    """What is stored of a trained model (the detector's `InjectionModel`)."""

    @property
    def classifier(self) -> NaiveBayesClassifier | None: ...
    @property
    def trained_on(self) -> int: ...
    @property
    def classifier_floor(self) -> float: ...
    @property
    def semantic(self) -> _Head | None: ...


M = TypeVar("M", bound=_Model)
# (classifier, samples trained on, classifier floor, embedding layer) -> the detector's model:
# the detector builds its own model type, so this module never imports the detector.
ModelBuilder = Callable[[NaiveBayesClassifier | None, int, float, object], M]


class _StoredHead(msgspec.Struct, forbid_unknown_fields=True):
    model_id: str
    weights: list[float]
    bias: float
    floor: float


class _Stored(msgspec.Struct, forbid_unknown_fields=True):
    format: int
    key: str
    trained_on: int
    classifier_floor: float
    nb_weights: dict[str, float] | None
    nb_scale: float
    nb_bias: float
    semantic: _StoredHead | None


# The modules whose code decides what training produces: an edited one (in a checkout, between
# releases) must not be answered with a model the old code trained.
_TRAINING_CODE = ("classifier.py", "features.py", "similarity.py", "detector.py", "semantic.py",
                  "model_cache.py")


def corpus_key(attacks: Sequence[Sample], benign: Sequence[Sample], *, semantic: bool) -> str:
    """sha256 over the format version, the gatewise version, the training code, the semantic
    flag and every training sample, in order (the order can change what is trained)."""
    h = hashlib.sha256()
    h.update(f"gatewise-injection-model\0{FORMAT_VERSION}\0{installed_version()}\0{int(semantic)}\0"
             .encode())
    here = Path(__file__).resolve().parent
    for name in _TRAINING_CODE:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    for label, group in (("a", attacks), ("b", benign)):
        for s in group:
            for part in (label, s.source, s.family, s.category, s.text):
                h.update(part.encode())
                h.update(b"\0")
    return h.hexdigest()


@cache
def installed_version() -> str:
    """The installed gatewise's version, from its metadata: the `gatewise` package itself is
    the top of the import graph, so the guardrails do not import it."""
    try:
        return metadata.version("gatewise")
    except metadata.PackageNotFoundError:
        return "unknown"


def path_for(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{FILE_PREFIX}{key[:32]}.json"


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def dump(model: _Model, key: str) -> bytes:
    clf = model.classifier
    head = None
    if model.semantic is not None:
        sem = model.semantic
        head = _StoredHead(sem.model_id, [float(w) for w in sem.weights], float(sem.bias), float(sem.floor))
    stored = _Stored(FORMAT_VERSION, key, model.trained_on, model.classifier_floor,
                     None if clf is None else dict(clf.weights), 1.0 if clf is None else clf.scale,
                     0.0 if clf is None else clf.bias, head)
    return msgspec.json.encode(stored)


def load(data: bytes, key: str, build: ModelBuilder[M],
         semantic_factory: SemanticFactory | None) -> M:
    """The model stored in `data`; `ValueError` when it is not a valid model for `key`.
    `semantic_factory(weights, bias, floor, model_id)` rebuilds the embedding layer (None: the
    embedding head is not available in this process, so a file holding one is not used)."""
    try:
        stored = msgspec.json.decode(data, type=_Stored)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"unreadable model file: {exc}") from exc
    if stored.format != FORMAT_VERSION or stored.key != key:
        raise ValueError("model file of another format or corpus")
    if not _finite(stored.classifier_floor, stored.nb_scale, stored.nb_bias) or stored.trained_on < 0:
        raise ValueError("model file holds non-finite numbers")
    clf = None
    if stored.nb_weights is not None:
        if not stored.nb_weights or not _finite(*stored.nb_weights.values()):
            raise ValueError("classifier weights empty or non-finite")
        clf = NaiveBayesClassifier(stored.nb_weights, stored.nb_scale, stored.nb_bias)
    layer = None
    if stored.semantic is not None:
        head = stored.semantic
        if semantic_factory is None:
            raise ValueError("model file has an embedding head but no embedder is installed")
        if not _finite(head.bias, head.floor, *head.weights):
            raise ValueError("embedding head holds non-finite numbers")
        layer = semantic_factory(head.weights, head.bias, head.floor, head.model_id)
    return build(clf, stored.trained_on, stored.classifier_floor, layer)


def store(path: Path, data: bytes) -> None:
    """Atomic and private (`gatewise.config.paths.write_private`)."""
    write_private(path, data)


def cached_model(cache_dir: Path, attacks: Sequence[Sample], benign: Sequence[Sample], *,
                 train: Callable[[], M], build: ModelBuilder[M],
                 semantic_factory: SemanticFactory | None) -> M:
    """The model for these samples from `cache_dir`, or `train()`ed and stored there. A cache that
    cannot be read or written never stops the detector: it trains, and tries to store."""
    key = corpus_key(attacks, benign, semantic=semantic_factory is not None)
    path = path_for(cache_dir, key)
    try:
        return load(path.read_bytes(), key, build, semantic_factory)
    except (OSError, ValueError):
        pass
    model = train()
    with contextlib.suppress(OSError):
        store(path, dump(model, key))
    return model


class _StoredCorpus(msgspec.Struct, forbid_unknown_fields=True):
    format: int
    key: str
    samples: list[tuple[str, str, str, str]]  # text, family, source, category


def cached_samples(cache_dir: Path, key: str, read: Callable[[], tuple[Sample, ...]],
                   categories: frozenset[str]) -> tuple[Sample, ...]:
    """The samples stored under `key`, or `read()` and stored. A sample whose category is not
    one of `categories`, or any other defect, means the file is read again from the packages."""
    path = cache_dir / f"{CORPUS_PREFIX}{key[:32]}.json"
    try:
        stored = msgspec.json.decode(path.read_bytes(), type=_StoredCorpus)
        if stored.format == FORMAT_VERSION and stored.key == key and all(
                c in categories for _, _, _, c in stored.samples):
            return tuple(Sample(*fields) for fields in stored.samples)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        pass
    samples = read()
    data = msgspec.json.encode(_StoredCorpus(FORMAT_VERSION, key, [
        (s.text, s.family, s.source, s.category) for s in samples]))
    with contextlib.suppress(OSError):
        store(path, data)
    return samples
