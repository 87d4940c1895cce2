"""The embedders' shared contract: an `(n, d)` float32 array of unit rows, in input order,
`(0, d)` for no text; the local model loads on first use and agrees with itself on a batch;
the awaitable wrapper runs it off the event loop; an alias's vectors come back normalised."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gatewise.embedding import (
    AliasEmbedder,
    AsyncEmbedder,
    MiniLMEmbedder,
    TextEmbedder,
    ThreadedEmbedder,
    normalise,
)


@pytest.fixture(scope="module")
def model() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_the_local_model_loads_lazily_and_returns_unit_rows(model: MiniLMEmbedder) -> None:
    fresh = MiniLMEmbedder()
    assert fresh._loaded is None  # constructing it costs nothing
    assert isinstance(fresh, TextEmbedder)
    v = model.embed(["How do I reset my password?", "I forgot my password", "Best pizza?"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > 0.6 > sims[0, 2]  # meaning, not spelling
    assert model.embed([]).shape == (0, 384)


def test_a_text_gets_the_same_vector_alone_or_in_a_padded_batch(model: MiniLMEmbedder) -> None:
    alone = model.embed(["short"])[0]
    batch = model.embed(["a much longer sentence that forces padding of the other", "short"])
    assert float(alone @ batch[1]) > 0.999


# What the model gave before batches were cut by length (first six components): vectors in
# semantic caches and RAG indexes stay valid only while these hold.
PINNED = {"How do I reset my password?":
          [0.005373, -0.061111, -0.071281, -0.03423, -0.042787, 0.068429],
          "Error E-412: the unit is overheating; let it cool down for ten minutes.":
          [-0.010588, 0.023756, 0.021126, -0.038863, -0.008173, -0.055798]}
MIXED = ["ok", "How do I reset my password?",
         " ".join(["The firmware update failed halfway through and the LED blinks amber."] * 40),
         "Error E-412: the unit is overheating; let it cool down for ten minutes.", "",
         "Wi-Fi drops every evening " * 6, "a b c"]


def test_the_vectors_are_the_ones_the_model_always_gave(model: MiniLMEmbedder) -> None:
    v = model.embed(list(PINNED))
    assert np.allclose(v[:, :6], list(PINNED.values()), atol=2e-6)
    assert float(v[0] @ v[1]) == pytest.approx(0.1037397, abs=1e-5)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_batch_cut_by_length_gives_each_text_its_own_vector_in_order(
        model: MiniLMEmbedder, workers: int) -> None:
    split = MiniLMEmbedder(workers=workers, batch_tokens=256)  # one run per text or two
    alone = np.concatenate([model.embed([t]) for t in MIXED])
    together = split.embed(MIXED)
    split.close()
    assert together.shape == (len(MIXED), 384)
    assert np.abs(together - alone).max() < 1e-5
    assert np.abs(model.embed(MIXED) - alone).max() < 1e-5  # the default budget: one run


def test_length_groups_sort_by_length_and_keep_each_run_within_its_budget() -> None:
    from gatewise.embedding.local import length_groups

    lengths = [300, 5, 120, 7, 120, 64, 6]
    groups = length_groups(lengths, 256)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert groups == [[1, 6, 3, 5], [2, 4], [0]]  # 4 x 64 fits 256; 300 runs alone
    for g in groups:
        assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 256
    assert length_groups([], 256) == []


async def test_the_threaded_wrapper_is_an_async_embedder(model: MiniLMEmbedder) -> None:
    wrapped = ThreadedEmbedder(model)
    assert isinstance(wrapped, AsyncEmbedder) and wrapped.name == model.name
    v = await wrapped.embed(["hello"])
    assert np.allclose(v, model.embed(["hello"]), atol=1e-6)
    await wrapped.aclose()


class _Client:
    def __init__(self, vectors: list[list[float]]) -> None:
        self.vectors = vectors
        self.asked: list[Any] = []

    async def embed(self, input: str | list[str], *, model: str | None = None,
                    **params: Any) -> Any:
        self.asked.append((input, model))
        return self


async def test_an_alias_embedder_normalises_and_checks_the_count() -> None:
    client = _Client([[3.0, 4.0], [0.0, 2.0]])
    emb = AliasEmbedder(client, "emb")
    v = await emb.embed(["a", "b"])
    assert np.allclose(v, [[0.6, 0.8], [0.0, 1.0]]) and client.asked == [(["a", "b"], "emb")]
    with pytest.raises(ValueError, match="2 vectors for 3 texts"):
        await emb.embed(["a", "b", "c"])
    assert np.allclose(normalise([0.0, 0.0]), [[0.0, 0.0]])  # a zero row stays zero


def test_a_missing_model_file_is_reported_before_any_request(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from gatewise.embedding import EmbedderUnavailableError, check_installed, local

    check_installed()  # the semantic extra is installed here
    monkeypatch.setattr(local, "default_files",
                        lambda: (tmp_path / "model.onnx", tmp_path / "tokenizer.json"))
    with pytest.raises(EmbedderUnavailableError, match="missing"):
        check_installed()
