"""Known providers as data: which wire format each speaks, where it lives, how it authenticates.

Every OpenAI-compatible host is one entry here, not code. Names follow LiteLLM's provider
prefixes so `model: groq/llama-3.1-8b-instant` means the same thing in both tools.

A request may name a deployment no alias configures (`model: groq/llama-3.1-8b-instant`, a
"direct" model). The caller then picks the model, so the model part is untrusted input:
`direct_model_ok` lets through only names that cannot steer the request to another path, query,
host or port. Providers whose default address is on the gateway's own host (`local_default`),
like keyless ones that are whatever server the operator points them at (`key_required=False`),
are never reachable that way unless the operator lists them in `allow_direct_models`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gatewise.providers.base import AuthStyle

# A direct model: `/`-separated segments of letters, digits and `._:-`, each starting with a
# letter, digit or `_` (so no `.`/`..` segment and no empty one), at most this long. No `?`, `#`,
# `%`, `@`, whitespace or control characters: nothing that means something in a URL.
DIRECT_MODEL_MAX = 128
_DIRECT_MODEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:\-]*(?:/[A-Za-z0-9_][A-Za-z0-9._:\-]*)*")
# Providers that put the model into the URL path take one segment, and no `:` (Gemini's method
# separator); a leading `models/` is Gemini's own namespace and is dropped before the check.
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._\-]*")
# Estimates lean high on purpose (an under-count lets a budget overspend); see
# `accounting/tokenizers.py` for how each factor was measured.
DEFAULT_ESTIMATE_FACTOR = 1.10


@dataclass(frozen=True, slots=True)
class Preset:
    wire: str
    api_base: str = ""
    key_env: tuple[str, ...] = ()
    base_env: tuple[str, ...] = ()
    auth: AuthStyle = "bearer"
    key_required: bool = True
    url_style: str = "standard"
    embeddings: bool = False
    version_env: tuple[str, ...] = ()
    # Whether the host accepts `stream_options.include_usage` (it then reports real usage).
    stream_usage: bool = True
    # The default address is a service on the gateway's own host (localhost:<port>): direct
    # models for it need the operator to list the provider in `allow_direct_models`.
    local_default: bool = False
    # The adapter puts the model into the URL path (Gemini, Azure deployments), not the body.
    model_in_path: bool = False
    # The engine runs inside the gateway's process (no address, no key, no network): never a
    # direct model, and its models are given an alias in `models:` instead.
    in_process: bool = False
    # Tokens cost nothing (the operator's own hardware or a test double): priced 0 unless the
    # deployment's own `prices:` say otherwise. Unknown prices stay None, never free.
    free: bool = False
    # Serves GGUF files from `local_models:` (the embedded model): counted with the file's own
    # vocabulary, and what the `local` alias means when no alias is called that.
    local_model: bool = False
    # Its models are OpenAI's: an unknown model name is estimated on o200k with OpenAI's factor.
    openai_tokens: bool = False
    # `ceil(cl100k count x factor)` forecasts tokens for models with no offline tokenizer.
    estimate_factor: float = DEFAULT_ESTIMATE_FACTOR
    # The vendor makes the models it serves: its price-table entries also answer to the bare
    # model name (`gpt-4o` on Azure finds `openai/gpt-4o`). Hosts of open models do not.
    model_owner: bool = False
    # Its base URL is often given as `host:port` (OLLAMA_HOST): `http://` is put in front.
    base_without_scheme: bool = False
    # Its model names another provider's model (`anthropic/claude-...`): tokens are counted,
    # and prices found, as that inner provider's.
    model_names_provider: bool = False


PRESETS: dict[str, Preset] = {
    "openai": Preset("openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",),
                     ("OPENAI_BASE_URL", "OPENAI_API_BASE"), embeddings=True,
                     openai_tokens=True, estimate_factor=1.0, model_owner=True),
    "azure": Preset("openai", "", ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
                    ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"), auth="api-key",
                    url_style="azure", embeddings=True, model_in_path=True,
                    version_env=("AZURE_API_VERSION", "OPENAI_API_VERSION"),
                    openai_tokens=True, estimate_factor=1.0),
    "groq": Preset("openai", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",)),
    "fireworks_ai": Preset("openai", "https://api.fireworks.ai/inference/v1",
                           ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY"), embeddings=True),
    "openrouter": Preset("openai", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",)),
    "mistral": Preset("openai", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",),
                      embeddings=True, stream_usage=False, model_owner=True),
    "together_ai": Preset("openai", "https://api.together.xyz/v1",
                          ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY"), embeddings=True),
    "deepseek": Preset("openai", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",),
                       model_owner=True),
    "hosted_vllm": Preset("openai", "http://localhost:8000/v1", ("HOSTED_VLLM_API_KEY",),
                          ("HOSTED_VLLM_API_BASE",), key_required=False, embeddings=True,
                          local_default=True),
    "lm_studio": Preset("openai", "http://localhost:1234/v1", ("LM_STUDIO_API_KEY",),
                        ("LM_STUDIO_API_BASE",), key_required=False, embeddings=True,
                        local_default=True),
    "llamafile": Preset("openai", "http://localhost:8080/v1", (), key_required=False,
                         local_default=True),
    "llama_cpp_server": Preset("openai", "http://localhost:8080/v1", (), key_required=False,
                               embeddings=True, local_default=True),
    "openai_compatible": Preset("openai", "", (), key_required=False, embeddings=True),
    "anthropic": Preset("anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",),
                        ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"), auth="x-api-key",
                        estimate_factor=1.25, model_owner=True),
    "gemini": Preset("gemini", "https://generativelanguage.googleapis.com",
                     ("GEMINI_API_KEY", "GOOGLE_API_KEY"), ("GEMINI_API_BASE",),
                     auth="x-goog-api-key", embeddings=True, model_in_path=True,
                     model_owner=True),
    "ollama": Preset("ollama", "http://localhost:11434", ("OLLAMA_API_KEY",), ("OLLAMA_HOST",
                     "OLLAMA_API_BASE"), key_required=False, embeddings=True,
                     local_default=True, base_without_scheme=True),
    "llamacpp": Preset("llamacpp", key_required=False, auth="none", embeddings=True,
                       in_process=True, free=True, local_model=True),
    # Prices come from the inner provider's entry (`litellm/anthropic/...`), so not free.
    "litellm": Preset("litellm", key_required=False, auth="none", embeddings=True,
                      in_process=True, model_names_provider=True),
    # gatewise.testing.FakeProvider: behaviour chosen by model name, for applications' tests.
    "fake": Preset("fake", key_required=False, auth="none", embeddings=True, in_process=True,
                   free=True),
}

# The same facts keyed by wire format, for code that holds a `Target` (whose `wire` is all it
# knows of the preset). Derived once from PRESETS and frozen; PRESETS stays the one source.
IN_PROCESS_WIRES = frozenset(p.wire for p in PRESETS.values() if p.in_process)
FREE_WIRES = frozenset(p.wire for p in PRESETS.values() if p.free)
LOCAL_MODEL_WIRES = frozenset(p.wire for p in PRESETS.values() if p.local_model)
# Vendors whose price entries answer to bare model names, in PRESETS order.
MODEL_OWNERS = tuple(name for name, p in PRESETS.items() if p.model_owner)

# Other spellings people use for the same providers (LiteLLM's included).
ALIASES: dict[str, str] = {
    "azure_ai": "azure",
    "azure_openai": "azure",
    "fireworks": "fireworks_ai",
    "together": "together_ai",
    "vllm": "hosted_vllm",
    "lmstudio": "lm_studio",
    "ollama_chat": "ollama",
    "google": "gemini",
    "google_ai_studio": "gemini",
    "local": "llamacpp",
    "llama_cpp": "llamacpp",
}


def find_preset(provider: str) -> tuple[str, Preset] | None:
    name = ALIASES.get(provider, provider)
    preset = PRESETS.get(name)
    return (name, preset) if preset is not None else None


def direct_model_ok(model: str, preset: Preset) -> bool:
    """Whether `model`, taken from a request, is safe to send to `preset`'s provider: the
    character rule and length cap above, and a single path segment where it goes in the URL."""
    if not 0 < len(model) <= DIRECT_MODEL_MAX or not _DIRECT_MODEL.fullmatch(model):
        return False
    return not preset.model_in_path or path_model_ok(model)


def path_model_ok(model: str) -> bool:
    """Whether a model (configured or requested) may be put into a URL path as one segment."""
    return _PATH_SEGMENT.fullmatch(model.removeprefix("models/")) is not None
