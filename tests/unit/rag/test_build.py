"""`build_rag`: a gateway that never uses its knowledge base pays nothing for it (no numpy,
usearch, bm25s, pypdf or onnxruntime imported, no store opened), and `rag.embedder` picks the
local model or an embedding alias."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from gatewise.config.loader import parse_config, resolve_config
from gatewise.embedding.alias import AliasEmbedder
from gatewise.rag.build import build_rag
from gatewise.storage.chunks_memory import MemoryChunkStore

_PROBE = """
import sys, tempfile
from gatewise.gateway import Gateway
from gatewise.config.loader import parse_config, resolve_config
cfg, w = parse_config({"models": {"m": [{"model": "fake/echo"}]},
                       "storage": {"state_dir": tempfile.mkdtemp()}})
gw = Gateway(resolve_config(cfg, None, {}, w))
assert gw.rag is not None and gw.rag._store is None
heavy = sorted(m for m in ("numpy", "usearch", "bm25s", "pypdf", "onnxruntime")
               if m in sys.modules)
print(",".join(heavy))
"""


def test_a_gateway_imports_nothing_heavy_until_rag_is_used() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "", out.stdout


def _config(tmp: Path, **rag: Any) -> Any:
    cfg, warnings = parse_config({"models": {"emb": [{"model": "fake/echo"}]},
                                  "storage": {"state_dir": str(tmp)}, "rag": rag})
    return resolve_config(cfg, None, {}, warnings)


class _Embeddings:
    async def embed(self, input: Any, *, model: str | None = None, **params: Any) -> Any:
        raise AssertionError("not called")


async def test_an_embedding_alias_is_called_through_the_gateway(tmp_path: Path) -> None:
    kb = build_rag(_config(tmp_path, embedder="emb"), embeddings=_Embeddings(),
                   open_store=MemoryChunkStore)
    emb = kb.embedder()
    assert isinstance(emb, AliasEmbedder) and emb.alias == "emb" and emb.name == "alias:emb"


async def test_the_local_model_is_the_default_and_its_width_is_known_without_loading(
        tmp_path: Path) -> None:
    kb = build_rag(_config(tmp_path), embeddings=_Embeddings(), open_store=MemoryChunkStore)
    name, dim = await kb.embedder_info()
    assert dim == 384 and "MiniLM" in name
    await kb.aclose()
