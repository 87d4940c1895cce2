"""The local model runs the shipped export rebuilt with fused kernels (`minilm_graph`): its
vectors are the shipped graph's (the semantic cache and RAG indexes stay valid), it is built
once into the user cache, and the embedder still works when that cache cannot be written or
the file is not the export the rebuild knows."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gatewise.embedding import MiniLMEmbedder, minilm_graph
from gatewise.embedding.local import default_files

# Real prose and code of varied lengths (a few words to past the 256-token window), so runs
# are padded, masked and truncated as in ingestion.
TEXTS = [
    "How do I reset my password?", "", "ok",
    "Error E-412: the unit is overheating; let it cool down for ten minutes.",
    textwrap.dedent(minilm_graph.__doc__ or ""),
    textwrap.dedent(MiniLMEmbedder.__doc__ or ""),
    " ".join(["The firmware update failed halfway through and the LED blinks amber."] * 40),
    *(p for p in Path(np.__file__).with_name("__init__.py").read_text().split("\n\n")
      if len(p) > 40)][:48]


@pytest.fixture(scope="module")
def shipped() -> np.ndarray:
    return MiniLMEmbedder(fused=False).embed(TEXTS)


def test_the_fused_graph_gives_the_shipped_graphs_vectors(
        tmp_path: Path, shipped: np.ndarray) -> None:
    fused = MiniLMEmbedder(cache_dir=tmp_path, workers=2, batch_tokens=1024)
    vectors = fused.embed(TEXTS)
    fused.close()
    assert vectors.shape == (len(TEXTS), 384)
    assert float((vectors * shipped).sum(axis=1).min()) > 0.9999
    assert np.abs(vectors - shipped).max() < 1e-4
    assert fused._loaded is not None and not fused._loaded.token_types  # the rebuilt graph


def test_the_fused_graph_is_built_once_into_the_cache(tmp_path: Path) -> None:
    MiniLMEmbedder(cache_dir=tmp_path).embed(["first"])
    (built,) = (tmp_path / "models").glob("*.onnx")
    assert "1.0" in built.name or "unknown" in built.name  # keyed by the package version
    assert stat.S_IMODE(built.stat().st_mode) == 0o600
    inode = built.stat().st_ino
    MiniLMEmbedder(cache_dir=tmp_path).embed(["second"])
    assert built.stat().st_ino == inode  # read back, not rewritten
    assert list((tmp_path / "models").iterdir()) == [built]


def test_an_unwritable_cache_still_gets_the_fused_graph(
        tmp_path: Path, shipped: np.ndarray) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    model = MiniLMEmbedder(cache_dir=blocker / "cache")
    vectors = model.embed(TEXTS[:8])
    assert model._loaded is not None and not model._loaded.token_types
    assert float((vectors * shipped[:8]).sum(axis=1).min()) > 0.9999


def test_a_file_that_is_not_the_export_is_refused_by_the_rebuild(tmp_path: Path) -> None:
    rebuilt = tmp_path / "fused.onnx"
    rebuilt.write_bytes(minilm_graph.build(default_files()[0]))
    with pytest.raises(minilm_graph.GraphLayoutError):
        minilm_graph.build(rebuilt)  # no export's dequantized weights or layer biases in it
    garbage = tmp_path / "garbage.onnx"
    for junk in (b"\x07\x00not protobuf", b"\x3a\xff\xff", b"\x3a\x03\x0a\x01\xff"):
        garbage.write_bytes(junk)  # a bad wire type, a cut length, a name not UTF-8
        with pytest.raises(minilm_graph.GraphLayoutError):
            minilm_graph.build(garbage)


def test_an_explicit_model_file_runs_as_given(tmp_path: Path) -> None:
    model = MiniLMEmbedder(model_path=default_files()[0], cache_dir=tmp_path)
    model.embed(["as shipped"])
    assert model._loaded is not None and model._loaded.token_types
    assert not (tmp_path / "models").exists()


def test_int8_activations_are_opt_in_close_vectors_under_another_name(
        tmp_path: Path, shipped: np.ndarray) -> None:
    quantized = MiniLMEmbedder(cache_dir=tmp_path, int8_activations=True)
    assert quantized.name != MiniLMEmbedder().name  # never mixed into a float32 index
    vectors = quantized.embed(TEXTS)
    cosine = (vectors * shipped).sum(axis=1)
    # How close depends on the CPU's int8 products: with VNNI the worst text was above 0.97;
    # on an AVX2-only CPU (AMD EPYC, no VNNI) ONNX Runtime's int8 products saturate, and the
    # worst was 0.966 (mean 0.991).
    assert float(cosine.min()) > 0.95 and float(cosine.mean()) > 0.985
    assert not np.allclose(vectors, shipped, atol=1e-4)  # quantized: not the same vectors
    assert len(list((tmp_path / "models").glob(f"{quantized.name}-*.onnx"))) == 1
    with pytest.raises(ValueError, match="int8_activations"):
        MiniLMEmbedder(fused=False, int8_activations=True)
