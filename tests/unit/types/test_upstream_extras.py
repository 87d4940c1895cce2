"""Fields some upstreams add to OpenAI's shapes decode, whatever they hold: `citations` is
ours for knowledge-base answers, a list of URLs from Perplexity, and `null` on every stream
chunk LiteLLM emits."""

from __future__ import annotations

import msgspec
import pytest

from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk


@pytest.mark.parametrize("value", ["null", '["https://example.org/a"]', '[{"index": 1}]'])
def test_a_stream_chunk_accepts_any_citations_an_upstream_sends(value: str) -> None:
    raw = ('{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", '
           '"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}], '
           f'"citations": {value}, "rag": null}}')
    chunk = msgspec.json.decode(raw, type=ChatCompletionChunk)
    assert chunk.choices[0].delta.content == "hi"


def test_a_completion_with_null_citations_decodes() -> None:
    raw = ('{"id": "c", "object": "chat.completion", "created": 1, "model": "m", '
           '"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, '
           '"finish_reason": "stop"}], "citations": null}')
    assert msgspec.json.decode(raw, type=ChatCompletion).citations is None
