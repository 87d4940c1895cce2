"""Orchestrations as aliases: `OrchestrationMiddleware` answers in OpenAI's shape with headers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.errors import AllTargetsFailedError, InvalidRequestError
from gatewise.orchestration import OrchestrationMiddleware
from gatewise.pipeline.core import Call
from gatewise.pipeline.stream import ChunkStream
from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.validation import chat_request_from_dict

from .support import ScriptedProvider, failing, resolved

ORCHESTRATIONS = {
    "fanout": {"mode": "parallel", "models": ["a", "down", "b"]},
    "vote": {"mode": "consensus", "models": ["a", "b", "c"], "min_agreement": 0.6},
    "careful": {"mode": "cascade", "models": ["a", "json"], "gate": "valid_json"},
    "hopeless": {"mode": "cascade", "models": ["a", "b"], "gate": "valid_json"},
}
SCRIPT = {"a": "Yes.", "b": "yes", "c": "no", "down": failing(), "json": '{"ok": true}'}


def _gateway() -> tuple[Gateway, ScriptedProvider]:
    cfg = resolved({m: m for m in SCRIPT}, orchestrations=ORCHESTRATIONS)
    gw = Gateway(cfg, middlewares=[OrchestrationMiddleware(cfg.config.orchestrations)], seed=1)
    provider = ScriptedProvider(SCRIPT)
    gw.pool.register("fake", provider)
    return gw, provider


async def _run(gw: Gateway, model: str, **kw: Any) -> tuple[Call, Any]:
    call = Call("chat", chat_request_from_dict(
        {"model": model, "messages": [{"role": "user", "content": "ok?"}], **kw}))
    return call, await gw.run(call)


async def test_parallel_answers_one_choice_per_model_indexed_by_position() -> None:
    gw, _ = _gateway()
    async with gw:
        call, out = await _run(gw, "fanout")
    assert isinstance(out, ChatCompletion) and out.model == "fanout"
    assert [(c.index, c.message.content) for c in out.choices] == [(0, "Yes."), (2, "yes")]
    assert call.response_headers["x-gatewise-models"] == "a,down,b"
    assert call.response_headers["x-gatewise-failed"] == "down=ProviderServerError"
    assert out.usage is not None and out.usage.total_tokens == 2 * 12
    assert call.deployment is not None and call.deployment.id == "fanout:parallel"


async def test_consensus_answers_the_winner_with_agreement_headers() -> None:
    gw, _ = _gateway()
    async with gw:
        call, out = await _run(gw, "vote")
    assert isinstance(out, ChatCompletion) and out.choices[0].message.content == "Yes."
    h = call.response_headers
    assert (h["x-gatewise-agreement"], h["x-gatewise-agreed"]) == ("0.667", "true")
    assert h["x-gatewise-winner"] == "a" and h["x-gatewise-deployment"] == "a:fake/a"
    assert out.usage is not None and out.usage.total_tokens == 3 * 12


async def test_cascade_answers_the_accepted_model_with_its_path() -> None:
    gw, provider = _gateway()
    async with gw:
        call, out = await _run(gw, "careful")
    assert isinstance(out, ChatCompletion) and json.loads(out.choices[0].message.content or "")
    assert call.response_headers["x-gatewise-cascade"] == "a>json"
    assert provider.calls == ["a", "json"]


async def test_a_cascade_nothing_passes_is_an_error_not_a_200() -> None:
    gw, _ = _gateway()
    async with gw:
        with pytest.raises(AllTargetsFailedError, match="passed the quality gate") as info:
            await _run(gw, "hopeless")
    assert info.value.status == 502 and len(info.value.errors) == 2


async def test_a_streaming_request_gets_the_answer_replayed_as_chunks() -> None:
    gw, _ = _gateway()
    async with gw:
        call, out = await _run(gw, "vote", stream=True,
                               stream_options={"include_usage": True})
        assert isinstance(out, ChunkStream)
        chunks = [c async for c in out]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Yes."
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert call.response_headers["x-gatewise-agreed"] == "true"


async def test_other_models_pass_through_untouched() -> None:
    gw, provider = _gateway()
    async with gw:
        r = await gw.chat("x", model="c")
    assert r.content == "no" and provider.calls == ["c"]


async def test_the_library_chat_call_reaches_orchestrations_too() -> None:
    gw, _ = _gateway()
    async with gw:
        r = await gw.chat("x", model="careful")
    assert r.content == '{"ok": true}' and r.deployment == "careful:cascade"


async def test_embedding_an_orchestration_is_the_callers_mistake() -> None:
    gw, _ = _gateway()
    async with gw:
        with pytest.raises(InvalidRequestError, match="orchestration"):
            await gw.run(Call("embed", EmbeddingRequest(model="vote", input="x")))
