"""What a client may see of an error: upstream text bounded and cleaned, our own untouched."""

from __future__ import annotations

import pytest

from gatewise.errors import (
    _SCAN_MAX,
    PUBLIC_MESSAGE_MAX,
    AllTargetsFailedError,
    BadRequestError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderServerError,
    public_text,
)


@pytest.mark.parametrize(("text", "gone"), [
    ("cannot connect to http://127.0.0.1:11434/api/chat: refused", "127.0.0.1"),
    ("upstream ollama.internal:11434 is down", "ollama.internal"),
    ("redis at cache:6379 timed out", "cache:6379"),
    ("try 10.1.2.3 next", "10.1.2.3"),
    ("bound to [::1]:8080", "::1"),
    ("peer fe80::1ff:fe23:4567:890a went away", "fe80"),
    ("see db01.prod.corp for details", "db01"),
    ("resolver says localhost", "localhost"),
    ("Incorrect API key provided: sk-proj-abc123def456ghi789", "sk-proj"),
    ("header Authorization: Bearer abcdefghijk123", "abcdefghijk123"),
    ("api_key=AbCd1234EfGh5678 rejected", "AbCd1234EfGh5678"),
    ('{"password": "hunter2"}', "hunter2"),
    ("proxy sent Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("key AIzaSyA1234567890abcdefghijklmnop is bad", "AIzaSy"),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "eyJ"),
    ("session 7fQ2xR9pL0aZ3mN8bV1cX4kJ6hG5dS2w expired", "7fQ2xR9pL0aZ3mN8bV1cX4kJ6hG5dS2w"),
    ("failed reading /var/lib/ollama/models/blobs/x", "/var/lib"),
    ("failed reading C:\\models\\x.gguf", "C:\\"),
    ("bell\x07 escape\x1b[31m nul\x00 bidi\u202e zero-width\u200b", "\x1b"),
    ("terminal colour \x1b[1;31mred\x1b[0m", "[1;31m"),
])
def test_upstream_text_loses_addresses_secrets_paths_and_control_characters(
        text: str, gone: str) -> None:
    clean = public_text(text)
    assert gone not in clean
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u202e\u200b" for c in clean)


@pytest.mark.parametrize("text", [
    "This model's maximum context length is 8192 tokens. However, your messages resulted in "
    "9000 tokens. Please reduce the length of the messages.",
    "prompt is too long: 210000 tokens > 200000 maximum",
    "messages.0.content.0.text: field required",
    "models/gemini-1.5-pro is not found for API version v1beta, or is not supported for "
    "generateContent.",
    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    "model 'llama3.2:1b' not found, try pulling it first",
    "Invalid value for 'response_format.json_schema.strict': expected a boolean",
    "Rate limit reached for gpt-4o-mini on tokens per min (TPM): Limit 30000, Used 29000.",
    "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo and llama-3.1-8b-instruct-q4_k_m differ",
    "max token length exceeded; basic information: duplicate key: name",
])
def test_well_known_provider_messages_pass_unchanged(text: str) -> None:
    assert public_text(text) == text


def test_long_text_is_cut_at_a_word_with_an_ellipsis_and_scanning_is_bounded() -> None:
    clean = public_text("detail " * 20_000)
    assert len(clean) <= PUBLIC_MESSAGE_MAX and clean.endswith("detail…")
    one_word = public_text("x" * 100_000)
    assert len(one_word) == PUBLIC_MESSAGE_MAX and one_word.endswith("…")
    # A secret straddling the scan limit is cut at a space, not into a visible fragment.
    tail = public_text("a " * (_SCAN_MAX // 2 - 1) + "sk-" + "Z9" * 40)
    assert "Z9" not in tail and "sk-" not in tail


def test_provider_errors_reach_clients_cleaned_and_our_own_messages_do_not_change() -> None:
    err = ProviderServerError("502 boom at http://10.0.0.7:8000/v1 " + "x " * 5000,
                              provider="hosted_vllm", model="qwen", upstream_status=502)
    payload = err.to_openai()["error"]
    assert payload["message"].startswith("hosted_vllm error (qwen): 502 boom at [url]")
    assert len(payload["message"]) <= PUBLIC_MESSAGE_MAX
    assert (payload["type"], payload["code"]) == ("api_error", "upstream_server_error")
    assert "10.0.0.7" in err.message  # the library caller (the operator) still sees it all
    conn = ProviderConnectionError("cannot connect to http://127.0.0.1:9: refused")
    assert "127.0.0.1" not in conn.to_openai()["error"]["message"]
    both = AllTargetsFailedError("every model failed: a: " + str(err), [err, BadRequestError("x")])
    assert "10.0.0.7" not in both.to_openai()["error"]["message"]
    own = InvalidRequestError("see https://example.com/docs for 'tools[0].function.name'",
                              param="tools")
    assert own.to_openai()["error"]["message"] == own.message
