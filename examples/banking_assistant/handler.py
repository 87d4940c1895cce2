"""The banking voice assistant's LLM handler: one (masked) transcript turn in, one reply out.

Everything a bank worries about is gatewise's job, configured in `gatewise.yaml`; this file
only wires it together:

- the persona: the locked assistant `northbank` (a client cannot replace its instructions);
- PII: the gateway masks the transcript (and tool results) before any model sees it, with
  placeholders stable per conversation, and restores them in replies and tool arguments;
- prompt injection: the gateway blocks the turn (`PromptInjectionDetected`) before the model;
- tools: schemas and permissions come from the config; the gateway validates every call the
  model makes (one repair round), `run_tools` validates again and runs the bank's handler;
- memory: the conversation lives in the gateway (`conversation=`); each turn sends only the
  new transcript, and the gateway prepends the history;
- identity: account tools need the permission `bank:account`, which the caller's identity
  gets only once `verify_identity` succeeded, so before that they are neither offered to the
  model nor accepted from it. The bank enforces the same rule again (`bank.NotVerified`).

What the handler adds is the call-centre policy: it counts consecutive failed turns (a
refusal, a rejected or failing tool call, a blocked injection, an upstream error) and after
`max_failures` hands the caller to a human with a structured hand-off (`Handoff`).

Small local models cannot be trusted to decide when to call a tool, so `tool_choice="route"`
(the offline default of `text_loop.py`) recognises the turn's intent from its words and asks
for exactly that tool: the embedded model then only fills in the arguments, constrained by a
grammar built from the tool's schema. Hosted models use `"auto"`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gatewise
from examples.banking_assistant.bank import ACCOUNT_PERMISSION, Bank, BankSession
from gatewise.config.loader import ResolvedConfig
from gatewise.errors import (
    GatewayError,
    GuardrailViolation,
    PIIViolation,
    PromptInjectionDetected,
    ToolCallRejected,
)
from gatewise.tools import RegisteredTool, ToolStep

CONFIG = Path(__file__).with_name("gatewise.yaml")
ALIAS = "bank-assistant"
ASSISTANT = "northbank"
ToolChoice = Literal["auto", "required", "route"]
FailureKind = Literal["injection_blocked", "pii_blocked", "blocked", "tool_rejected",
                      "tool_error", "refused", "no_answer", "upstream_error"]

REPLIES: dict[str, str] = {
    "injection_blocked": "I'm sorry, I can't help with that request.",
    "pii_blocked": "Please don't share that kind of information on this line.",
    "blocked": "I'm sorry, I can't help with that request.",
    "tool_rejected": "Sorry, I couldn't complete that request. Could you say it another way?",
    "refused": "I need to verify your identity first. Please tell me your customer id and "
               "your four-digit PIN.",
    "no_answer": "Sorry, I didn't manage to finish that. Could you repeat it?",
    "upstream_error": "Sorry, I'm having technical trouble right now.",
}
# Failures whose turn the gateway's memory never stored (the call was refused or failed).
_UNSTORED = frozenset({"injection_blocked", "pii_blocked", "blocked", "refused",
                       "tool_rejected", "upstream_error"})
HANDOFF_REPLY = ("I'm transferring you to one of my colleagues, who can see what we discussed. "
                 "Please stay on the line.")

# Words that name an intent, checked in this order (the first match wins).
_INTENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("verify_identity", re.compile(r"\b(pin|customer (id|number)|C-\d{4})\b", re.I)),
    ("freeze_card", re.compile(r"\b(freeze|block|lost|stolen)\b", re.I)),
    ("transfer", re.compile(r"\b(transfer|move|send)\b", re.I)),
    ("list_transactions", re.compile(r"\b(transactions?|payments?|spent|statement)\b", re.I)),
    ("get_balance", re.compile(r"\b(balance|how much)\b", re.I)),
)


def detect_intent(text: str) -> str | None:
    """The tool a transcript asks for, from its words (None: small talk or unclear)."""
    for name, pattern in _INTENTS:
        if pattern.search(text):
            return name
    return None


@dataclass(slots=True)
class Handoff:
    """What the human agent's desk receives: why, who, what was wanted, and what was said."""

    reason: str
    conversation_id: str
    verified_customer_id: str | None
    last_intent: str | None
    transcript_summary: str
    failures: list[str]
    turns: int
    created_at: float = field(default_factory=time.time)
    type: str = "handoff_to_human"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class TurnResult:
    reply: str
    failure: FailureKind | None = None
    steps: list[ToolStep] = field(default_factory=list)
    handoff: Handoff | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and self.handoff is None


def tool_specs(config: ResolvedConfig, alias: str = ALIAS) -> list[dict[str, Any]]:
    """The tools (name, description, JSON schema, permission) the config declares for the
    alias's tool guard: the one definition the gateway, the handler and the LiveKit agent
    use."""
    policy = config.config.guardrails.aliases.get(alias)
    if policy is None or policy.tools is None:
        raise gatewise.ConfigError(f"guardrails.aliases.{alias}.tools declares no tools")
    return [{"name": t.name, "description": t.description, "parameters": t.parameters,
             "permission": t.permission} for t in policy.tools.tools]


class BankingHandler:
    """One caller's conversation. `await handler.turn(transcript)` per utterance."""

    def __init__(self, gateway: gatewise.Gateway, bank: Bank | None = None, *,
                 conversation: str | None = None, model: str = ALIAS,
                 assistant: str = ASSISTANT, max_failures: int = 3,
                 tool_choice: ToolChoice = "auto", max_steps: int = 4,
                 max_tokens: int = 160, tenant: str = "default") -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.gateway = gateway
        self.session: BankSession = (bank or Bank()).session()
        self.conversation = conversation or f"call-{uuid.uuid4().hex[:12]}"
        self.model = model
        self.assistant = assistant
        self.max_failures = max_failures
        self.tool_choice = tool_choice
        self.max_steps = max_steps
        self.max_tokens = max_tokens
        self.tenant = tenant
        self.failures: list[str] = []  # consecutive ones; a good turn clears them
        self.turns = 0
        self.last_intent: str | None = None
        self.handoff: Handoff | None = None
        self.registry = gatewise.ToolRegistry()
        handlers = self.session.handlers()
        for spec in tool_specs(gateway.config, model):
            self.registry.add(RegisteredTool(
                name=spec["name"], description=spec["description"],
                parameters=spec["parameters"], permission=spec["permission"],
                handler=handlers[spec["name"]], source="config"))

    @property
    def identity(self) -> gatewise.Identity:
        """The caller as the gateway sees them: account tools only once verified."""
        perms = {"llm:generate"}
        if self.session.verified:
            perms.add(ACCOUNT_PERMISSION)
        return gatewise.Identity(tenant=self.tenant, user=self.conversation, role="member",
                                 permissions=frozenset(perms))

    async def turn(self, transcript: str) -> TurnResult:
        """One utterance. After a hand-off every turn answers with the hand-off again."""
        if self.handoff is not None:
            return TurnResult(HANDOFF_REPLY, handoff=self.handoff)
        self.turns += 1
        intent = detect_intent(transcript)
        if intent is not None:
            self.last_intent = intent
        result = await self._answer(transcript, intent)
        for step in result.steps:
            self.last_intent = step.tool
        if result.failure is None:
            self.failures.clear()
            return result
        self.failures.append(result.failure)
        if len(self.failures) >= self.max_failures:
            self.handoff = await self._handoff()
            return TurnResult(HANDOFF_REPLY, result.failure, result.steps, self.handoff)
        return result

    async def _answer(self, transcript: str, intent: str | None) -> TurnResult:
        params: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": 0}
        if self.tool_choice == "required":
            params["tool_choice"] = "required"
        elif self.tool_choice == "route" and intent is not None:
            tool = self.registry.get(intent)
            if tool is not None and not tool.permitted(self.identity):
                # Refused in code: the model is not even asked.
                return TurnResult(REPLIES["refused"], "refused")
            params["tool_choice"] = {"type": "function", "function": {"name": intent}}
            # Once the routed tool ran, the model only words the reply. Offered the tools
            # again, a 135M model sometimes answered the tool's result with a second call of
            # its own invention (verify_identity with the result's first_name), which the
            # guard rejected, and the whole turn with it.
            params["then_tool_choice"] = "none"
        try:
            loop = await gatewise.run_tools(
                self.gateway, messages=[{"role": "user", "content": transcript}],
                registry=self.registry, identity=self.identity, model=self.model,
                max_steps=self.max_steps, conversation=self.conversation,
                assistant=self.assistant, **params)
        except PromptInjectionDetected:
            return TurnResult(REPLIES["injection_blocked"], "injection_blocked")
        except PIIViolation:
            return TurnResult(REPLIES["pii_blocked"], "pii_blocked")
        except ToolCallRejected:
            return TurnResult(REPLIES["tool_rejected"], "tool_rejected")
        except GuardrailViolation:  # another guard of the policy (an output check)
            return TurnResult(REPLIES["blocked"], "blocked")
        except GatewayError:
            return TurnResult(REPLIES["upstream_error"], "upstream_error")
        failure: FailureKind | None = None
        for step in loop.steps:
            if step.error is not None:
                failure = "tool_error" if step.executed else "tool_rejected"
        text = (loop.content or "").strip()
        if not loop.completed or not text:
            failure = failure or "no_answer"
            text = text or REPLIES["no_answer"]
        return TurnResult(text, failure, loop.steps)

    async def _handoff(self) -> Handoff:
        return Handoff(
            reason=f"{len(self.failures)} consecutive failed turns: " + ", ".join(self.failures),
            conversation_id=self.conversation, verified_customer_id=self.session.customer_id,
            last_intent=self.last_intent, transcript_summary=await self.transcript_summary(),
            failures=list(self.failures), turns=self.turns)

    async def transcript_summary(self, max_chars: int = 800) -> str:
        """The conversation as the gateway stored it (masked), newest turns kept, plus how
        many of the failed turns it never stored (blocked, refused in code, or failed): by
        kind only, since their text never went through the PII guard."""
        try:
            conv = await self.gateway.conversations.get(self.conversation,
                                                        identity=self.identity)
            messages: Sequence[dict[str, Any]] = conv.messages
        except gatewise.ConversationNotFoundError:
            messages = []
        lines = [_line(m) for m in messages]
        unstored = [f for f in self.failures if f in _UNSTORED]
        if unstored:
            lines.append(f"[{len(unstored)} failed turn(s) not in the transcript: "
                         + ", ".join(unstored) + "]")
        # Cut at spaces only, so a placeholder (`<EMAIL_1>`) is never split.
        kept = [x if len(x) <= 160 else x[:160].rsplit(" ", 1)[0] + " …" for x in lines if x]
        dropped = False
        while len(kept) > 1 and len(" | ".join(kept)) > max_chars:
            kept.pop(0)  # the oldest whole line goes first
            dropped = True
        return ("… | " if dropped else "") + " | ".join(kept)


def _line(m: dict[str, Any]) -> str:
    role = m.get("role")
    content = m.get("content")
    text = content if isinstance(content, str) else ""
    if role == "user":
        return f"Customer: {text}"
    if role == "assistant":
        calls = m.get("tool_calls") or []
        if calls:
            return "Assistant called " + ", ".join(c["function"]["name"] for c in calls)
        return f"Assistant: {text}"
    if role == "tool":
        return f"Tool result: {text[:120]}"
    return ""


def build_gateway(config: str | Path = CONFIG) -> gatewise.Gateway:
    """The gateway the example runs on: `gatewise.yaml` next to this file by default."""
    return gatewise.Gateway.from_config(config)
