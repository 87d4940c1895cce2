"""The banking assistant as a LiveKit Agents voice agent, its LLM served by gatewise.

    gatewise serve --config examples/banking_assistant/gatewise.yaml      # terminal 1
    GATEWISE_URL=http://127.0.0.1:4000 GATEWISE_KEY=sk-gw-... \\
    LIVEKIT_URL=wss://... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... \\
    OPENAI_API_KEY=... python examples/banking_assistant/livekit_agent.py dev   # terminal 2

The agent's LLM is LiveKit's own OpenAI plugin, `livekit.plugins.openai.LLM`, with its base
URL pointed at the gateway and the gateway's alias as the model: every turn goes through
gatewise, so the PII masking, the prompt-injection block, the locked Northbank persona
(`metadata.assistant`) and the validation of every tool call against `gatewise.yaml`'s
schemas apply exactly as in `handler.py`. The tools are LiveKit function tools built from
the same schemas; they run here, in the agent, on a `BankSession` that refuses account
actions until `verify_identity` succeeded. Speech-to-text and text-to-speech (OpenAI's, in
this sketch) do not go through the gateway, which serves text models only.

Nothing LiveKit is imported by `bank.py` or `handler.py`; this module needs the `livekit`
extra (`pip install 'gatewise[livekit]'`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runnable from anywhere

from livekit.agents import Agent, AgentSession, JobContext, ToolError, function_tool
from livekit.plugins import openai

from examples.banking_assistant.bank import Bank, BankError, BankSession
from examples.banking_assistant.handler import ALIAS, ASSISTANT, CONFIG, tool_specs
from gatewise import load_config
from gatewise.config.secrets import process_env

# The agent's own instructions are dropped by the gateway (the assistant is `locked`): the
# persona and its rules live in gatewise.yaml, where callers cannot change them.
INSTRUCTIONS = "You are Northbank's telephone banking assistant."


def gateway_llm(base_url: str, api_key: str, *, model: str = ALIAS,
                assistant: str = ASSISTANT, **kw: Any) -> openai.LLM:
    """LiveKit's OpenAI LLM, talking to gatewise: `base_url` is the gateway's root (or its
    `/v1`), `api_key` a gatewise virtual key, `model` the config's alias."""
    root = base_url.rstrip("/").removesuffix("/v1")
    return openai.LLM(model=model, base_url=f"{root}/v1", api_key=api_key,
                      metadata={"assistant": assistant}, **kw)


def bank_tools(session: BankSession, specs: list[dict[str, Any]]) -> list[Any]:
    """One LiveKit raw function tool per tool the config declares, run on `session`. A
    refusal of the bank becomes a `ToolError`, which LiveKit hands to the model as the
    tool's result."""
    handlers = session.handlers()

    def make(name: str, run: Callable[..., dict[str, Any]], spec: dict[str, Any]) -> Any:
        async def call(raw_arguments: dict[str, Any]) -> str:
            try:
                return json.dumps(run(**raw_arguments))
            except BankError as exc:
                raise ToolError(str(exc)) from None

        return function_tool(call, raw_schema={"name": name, "description": spec["description"],
                                               "parameters": spec["parameters"]})

    return [make(s["name"], handlers[s["name"]], s) for s in specs]


class BankAgent(Agent):
    def __init__(self, session: BankSession, specs: list[dict[str, Any]]) -> None:
        super().__init__(instructions=INSTRUCTIONS, tools=bank_tools(session, specs))
        self.bank_session = session


async def entrypoint(ctx: JobContext) -> None:  # pragma: no cover - needs a LiveKit room
    await ctx.connect()
    specs = tool_specs(load_config(CONFIG))
    env = process_env()
    session: AgentSession[None] = AgentSession(
        llm=gateway_llm(env.get("GATEWISE_URL", "http://127.0.0.1:4000"),
                        env.get("GATEWISE_KEY", "gatewise")),
        stt=openai.STT(), tts=openai.TTS())
    await session.start(agent=BankAgent(Bank().session(), specs), room=ctx.room)
    await session.generate_reply(instructions="Greet the caller and ask how you can help.")


if __name__ == "__main__":  # pragma: no cover - LiveKit's worker CLI (dev, start, console)
    from livekit.agents import WorkerOptions, cli

    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint))
