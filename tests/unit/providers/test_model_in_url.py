"""Adapters that put the model into the URL path keep it to one path segment, whatever the
name, so neither a request nor a config can add segments, a query or a fragment."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from gatewise.providers.base import Target
from gatewise.providers.gemini.adapter import GeminiAdapter
from gatewise.providers.openai.wire import url_for
from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.validation import chat_request_from_dict

NAMES = ["../../admin", "x?alt=json", "x#f", "a/b", "x:streamGenerateContent", "x y", "%2e%2e"]
REQ = chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize("name", NAMES)
def test_gemini_puts_the_model_in_one_encoded_segment(name: str) -> None:
    t = Target(provider="gemini", wire="gemini", model=name, api_base="https://g.example",
               api_key="k", auth="x-goog-api-key")
    a = GeminiAdapter()
    embed = a.build_embed_request(EmbeddingRequest(model="m", input="x"), t).url
    for url in (a.build_request(REQ, t).url, embed):
        parts = urlsplit(url)
        assert parts.hostname == "g.example" and parts.fragment == ""
        segments = parts.path.split("/")
        assert segments[:4] == ["", "v1beta", "models", segments[3]] and len(segments) == 4
        assert unquote(segments[3]).rsplit(":", 1)[0] == name  # the name, only encoded
        assert parts.query in ("", "alt=sse")


@pytest.mark.parametrize("name", NAMES)
def test_azure_puts_the_deployment_in_one_encoded_segment(name: str) -> None:
    t = Target(provider="azure", wire="openai", model=name, api_base="https://r.example",
               api_key="k", auth="api-key", url_style="azure", api_version="2024-10-21")
    parts = urlsplit(url_for(t, "chat/completions"))
    assert parts.hostname == "r.example" and parts.fragment == ""
    segments = parts.path.split("/")
    assert segments[:3] == ["", "openai", "deployments"] and len(segments) == 6
    assert unquote(segments[3]) == name and segments[4:] == ["chat", "completions"]
    assert parts.query == "api-version=2024-10-21"


def test_ordinary_names_are_sent_as_they_are() -> None:
    g = Target(provider="gemini", wire="gemini", model="models/gemini-2.5-flash",
               api_base="https://g.example")
    assert GeminiAdapter().build_request(REQ, g).url == \
        "https://g.example/v1beta/models/gemini-2.5-flash:generateContent"
    az = Target(provider="azure", wire="openai", model="prod-gpt4o.v2", api_base="https://r",
                url_style="azure", api_version="2024-10-21")
    assert url_for(az, "embeddings") == \
        "https://r/openai/deployments/prod-gpt4o.v2/embeddings?api-version=2024-10-21"
