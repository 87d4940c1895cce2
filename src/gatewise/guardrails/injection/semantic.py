"""The embedding layer: a logistic head on sentence vectors distilled from all-MiniLM-L6-v2.

Why: the n-gram layers learn the wording of the corpora they were trained on. A jailbreak that
asks for something harmful through a persona, or a request that never says "ignore" or "system
prompt", shares little wording with them; in an embedding space learned on a billion sentence
pairs that have nothing to do with our corpora, its words sit close to the ones the training
attacks used. A linear head on that space carries what it learned to words it never saw.

Why distilled, not the full encoder: the int8 MiniLM that `gatewise.embedding.local` runs costs
about 80 ms of CPU for 64 word pieces and 110 ms for 128 on this project's reference machine,
20 times the whole check's budget of 5 ms per KB. So the model is distilled once into a static
table, the model2vec way: every word piece of its vocabulary is run through the encoder on its
own (`[CLS] piece [SEP]`, mean-pooled as sentence-transformers does), giving one 384-d vector per
piece. A text's features are the frequency-weighted mean of its pieces' vectors and their
maximum: a table lookup, well under a millisecond per KB. Distilling takes about 13 s of CPU on
this project's reference machine (30,522 three-token sequences in batches of 512, one thread;
batch size barely matters at this length, nor do the fused kernels of `minilm_graph`: the cost
is the six layers' matrix products), once per machine: the table is kept in the user cache
(`numpy.save`, `allow_pickle=False`, keyed by the model file's sha256; validated on load; any
problem rebuilds it). The detector's default ("auto") builds it off the request path.

The head is an L2-regularised logistic regression fitted in numpy by Newton's method (classes
weighted equally) inside `detector.train_model`, so the leave-one-source-out evaluation holds it
out like every other learned part; its probability counts only above a floor calibrated on the
training data's out-of-source benign text, as the classifier's does.

Optional: this module imports numpy and is imported only when `detector.semantic_available()`
says the model, its tokenizer and onnxruntime are installed (the `semantic` extra); otherwise
the detector runs its other layers alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gatewise.config.paths import write_private
from gatewise.embedding.local import DIMENSION, MODEL_ID, default_files
from gatewise.guardrails.injection.features import WINDOW, windows, words

TABLE_VERSION = 1
STATIC_ID = f"{MODEL_ID}/static-v{TABLE_VERSION}-meanmax"  # names the vectors a head was trained on
FEATURES = 2 * DIMENSION  # weighted mean and maximum of the pieces' vectors
_DISTILL_BATCH = 512
_SPECIAL_IDS = (0, 100, 101, 102, 103)  # [PAD] [UNK] [CLS] [SEP] [MASK] of the BERT vocabulary
_LAST_SPECIAL = 103
_L2 = 1.0  # ridge on the head's weights (relative to the equally weighted mean loss)
_NEWTON_STEPS = 30
_WORD_CACHE = 200_000  # words whose word pieces are remembered (a bounded dict, per embedder)

Matrix = npt.NDArray[np.float32]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def distill(model_path: Path, vocab_size: int) -> npt.NDArray[np.float16]:
    """One unit vector per word piece: the encoder's mean-pooled output for `[CLS] piece [SEP]`
    (special pieces get zeros, so they add nothing to a mean)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    token_types = "token_type_ids" in {i.name for i in session.get_inputs()}
    table = np.zeros((vocab_size, DIMENSION), dtype=np.float16)
    for start in range(0, vocab_size, _DISTILL_BATCH):
        piece = np.arange(start, min(vocab_size, start + _DISTILL_BATCH), dtype=np.int64)
        ids = np.stack([np.full_like(piece, 101), piece, np.full_like(piece, 102)], axis=1)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        pooled = session.run(None, feeds)[0].mean(axis=1)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        table[start:start + len(piece)] = pooled
    table[[i for i in _SPECIAL_IDS if i < vocab_size]] = 0
    return table


def _store(path: Path, table: npt.NDArray[np.float16]) -> None:
    buf = io.BytesIO()
    np.save(buf, table, allow_pickle=False)
    write_private(path, buf.getvalue())


def load_table(cache_dir: Path, model_path: Path, vocab_size: int) -> npt.NDArray[np.float16]:
    """The distilled table from `cache_dir`, or distilled now and stored there."""
    path = cache_dir / f"minilm-static-v{TABLE_VERSION}-{_sha256(model_path)[:32]}.npy"
    try:
        table = np.load(path, allow_pickle=False)
        if (table.shape == (vocab_size, DIMENSION) and table.dtype == np.float16
                and bool(np.isfinite(table).all())):
            return np.asarray(table)
    except (OSError, ValueError):
        pass
    table = distill(model_path, vocab_size)
    with contextlib.suppress(OSError):
        _store(path, table)
    return table


class StaticEmbedder:
    """Text → the mean of its word pieces' distilled vectors, L2-normalised (zeros for a text
    with no known piece). Words are split as the other learned layers split them
    (`features.words`, punctuation dropped) and each word's pieces are remembered, so the
    WordPiece tokenizer runs once per distinct word. Thread-safe (a dict of immutable values)."""

    def __init__(self, table: npt.NDArray[np.float16], tokenizer: Any) -> None:
        self.table = table
        self._tokenizer = tokenizer
        self._pieces: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, cache_dir: Path) -> StaticEmbedder:
        from tokenizers import Tokenizer

        model_path, tokenizer_path = default_files()
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(load_table(cache_dir, model_path, tokenizer.get_vocab_size()), tokenizer)

    def pieces(self, text: str) -> list[int]:
        """The word-piece ids of `text`'s words, in order."""
        found: dict[str, tuple[int, ...]] = {}
        missing: list[str] = []
        for w in dict.fromkeys(words(text)):
            ids = self._pieces.get(w)
            if ids is None:
                missing.append(w)
            else:
                found[w] = ids
        if missing:
            # One `encode` per new word, never `encode_batch`: the batch call starts the
            # tokenizer's own thread pool, which a server that forks its workers must not have.
            for w in missing:
                found[w] = tuple(self._tokenizer.encode(w, add_special_tokens=False).ids)
            with self._lock:
                if len(self._pieces) + len(missing) > _WORD_CACHE:
                    self._pieces.clear()
                self._pieces.update((w, found[w]) for w in missing)
        out: list[int] = []
        for w in words(text):
            out.extend(found[w])
        return out

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Per text: the Zipf-weighted mean of its pieces' vectors (`_zipf`: rare pieces count
        more, as model2vec weighs them) and their element-wise maximum, each L2-normalised, side
        by side (`FEATURES` columns; zeros for a text with no known piece)."""
        out = np.zeros((len(texts), FEATURES), dtype=np.float32)
        for i, text in enumerate(texts):
            ids = self.pieces(text)
            if not ids:
                continue
            at = np.fromiter(ids, dtype=np.int64, count=len(ids))
            at = at[at > _LAST_SPECIAL]  # [UNK] (scripts the vocabulary lacks) adds nothing
            if not len(at):
                continue
            vectors = self.table[at].astype(np.float32)
            mean = _zipf(at) @ vectors
            peak = vectors.max(axis=0)
            out[i, :DIMENSION] = mean / max(float(np.linalg.norm(mean)), 1e-12)
            out[i, DIMENSION:] = peak / max(float(np.linalg.norm(peak)), 1e-12)
        return out


def _zipf(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """log(rank) weights: BERT's word pieces are numbered by frequency from id 1996 ("the") on,
    so the id is a frequency rank known without any training data."""
    return np.log1p(np.maximum(ids - 1995, 1)).astype(np.float32)


def train_head(x: Matrix, y: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
    """(weights, bias) of an L2-regularised logistic regression, classes weighted equally,
    fitted by Newton's method (deterministic; a few dozen 385x385 solves)."""
    n, d = x.shape
    xb = np.hstack([x.astype(np.float64), np.ones((n, 1))])
    pos = max(float(y.sum()), 1.0)
    neg = max(float(n - y.sum()), 1.0)
    sw = np.where(y > 0.5, 0.5 / pos, 0.5 / neg)
    ridge = np.full(d + 1, _L2 / n)
    ridge[-1] = 0.0  # the bias is not shrunk
    w = np.zeros(d + 1)
    for _ in range(_NEWTON_STEPS):
        z = np.clip(xb @ w, -30.0, 30.0)
        p = 1.0 / (1.0 + np.exp(-z))
        grad = xb.T @ (sw * (p - y)) + ridge * w
        hess = (xb * (sw * p * (1.0 - p))[:, None]).T @ xb + np.diag(ridge + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-7:
            break
    return w[:-1], float(w[-1])


Embed = Callable[[Sequence[str]], Matrix]


@dataclass(slots=True)
class SemanticLayer:
    """A trained head and the embedding function that feeds it (`StaticEmbedder.embed`).
    `floor`: the probability from which the head counts (`detector._semantic_floor`)."""

    weights: npt.NDArray[np.float64]
    bias: float
    floor: float
    embed: Embed = field(repr=False)
    model_id: str = STATIC_ID

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """The head's probability that each text is an injection: the most suspicious of its
        windows (`features.windows`, as the classifier reads them)."""
        cut = [windows(t) for t in texts]
        flat = [w for parts in cut for w in parts]
        if not flat:
            return np.zeros(0)
        z = np.clip(self.embed(flat).astype(np.float64) @ self.weights + self.bias, -30.0, 30.0)
        p = 1.0 / (1.0 + np.exp(-z))
        out, i = [], 0
        for parts in cut:
            out.append(float(p[i:i + len(parts)].max()))
            i += len(parts)
        return np.array(out)

    def probability(self, text: str) -> float:
        return float(self.probabilities([text])[0])


class TrainingRows:
    """`StaticEmbedder.embed` that remembers, for training: the leave-one-source-out evaluation
    fits a head per fold (and two more per fold to calibrate its floor) on mostly the same texts,
    and vectors do not depend on labels, so each text is embedded once. Not for scanning (it
    would grow with the traffic)."""

    def __init__(self, embedder: StaticEmbedder) -> None:
        self.embedder = embedder
        self._memo: dict[str, npt.NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> Matrix:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing:
            self._memo.update(zip(missing, self.embedder.embed(missing), strict=True))
        if not texts:
            return np.zeros((0, FEATURES), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])

    def rows(self, texts: Sequence[str]) -> Matrix:
        """One row per training text: its first window (as the classifier trains)."""
        return self.embed([t[:WINDOW] for t in texts])
