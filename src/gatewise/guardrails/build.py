"""Config → guard middleware. Heavy pieces (the Presidio analyzer, the injection classifier)
are shared by every policy that asks for the same settings and built off the event loop at
start-up (`Guardrails.warm`), not on the first request.

Every policy's PII and injection guards share one small thread pool (`check_threads`): checks
of a request with more than `offload_chars` characters of text run there, so a burst of long
prompts keeps at most that many threads busy and never stalls the event loop; shorter checks
run inline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from gatewise.config.schema import GuardrailPolicy, GuardrailsConfig
from gatewise.guardrails.policy import GuardrailsMiddleware, has_policies
from gatewise.pipeline.core import Call, Middleware
from gatewise.security.events import SecurityEventSink

if TYPE_CHECKING:
    from gatewise.guardrails.injection import InjectionDetector
    from gatewise.guardrails.pii.middleware import PIIMiddleware
    from gatewise.storage.base import KVStore
    from gatewise.tools import ToolRegistry


class Guardrails:
    """The guard middleware of one gateway, plus what must be started with it."""

    def __init__(self, config: GuardrailsConfig, *, events: SecurityEventSink,
                 vault_store: KVStore | None, tools: ToolRegistry | None) -> None:
        self.config = config
        self.events = events
        self.vault_store = vault_store
        self.tools = tools
        self._detectors: dict[tuple[float | None, bool | str], InjectionDetector] = {}
        self._pii: list[PIIMiddleware] = []
        self._pii_of: dict[int, PIIMiddleware] = {}  # id(policy) -> its PII guard
        self._mcp: list[tuple[Any, str | None]] = []
        self._open_mcp: list[Any] = []
        self.middleware: GuardrailsMiddleware | None = None
        # Threads start on the first offloaded check, not here.
        self.checks = ThreadPoolExecutor(max_workers=config.check_threads,
                                         thread_name_prefix="gatewise-guard")
        if has_policies(config):
            self.middleware = GuardrailsMiddleware(config, self._build)

    def _build(self, policy: GuardrailPolicy) -> list[Middleware]:
        out: list[Middleware] = []
        detector: InjectionDetector | None = None
        inj = policy.injection
        if inj is not None and inj.enabled:
            from gatewise.guardrails.injection import InjectionDetector, InjectionMiddleware

            key = (inj.threshold, inj.semantic)
            if key not in self._detectors:
                t = inj.threshold if inj.threshold is not None else 0.5
                self._detectors[key] = InjectionDetector(threshold=t, indirect_threshold=t,
                                                         semantic=inj.semantic)
            detector = self._detectors[key]
            out.append(InjectionMiddleware(detector, action=inj.action,
                                           scan_indirect=inj.scan_indirect, events=self.events,
                                           flag_threshold=inj.flag_threshold,
                                           offload_chars=self.config.offload_chars,
                                           executor=self.checks))
        tl = policy.tools
        if tl is not None and tl.enabled:
            from gatewise.guardrails.tools.middleware import ToolGuardMiddleware
            from gatewise.tools import McpServer, ToolRegistry

            if self.tools is None:
                self.tools = ToolRegistry()
            for spec in tl.tools:
                if spec.name not in self.tools:
                    self.tools.add_from_config({k: v for k, v in (
                        ("name", spec.name), ("description", spec.description),
                        ("parameters", spec.parameters), ("permission", spec.permission),
                        ("handler", spec.handler)) if v is not None})
            for srv in tl.mcp_servers:
                target: Any = srv.url if srv.url else list(srv.command or [])
                self._mcp.append((McpServer(target, name=srv.name, permission=srv.permission),
                                  srv.permission))
            # Arguments are inspected for injections when this policy scans for them.
            inspect = None
            if detector is not None:
                scan = detector.scan

                def inspect(text: str) -> bool:
                    return scan(text, "indirect").flagged

            out.append(ToolGuardMiddleware(self.tools, repair=tl.repair, events=self.events,
                                           inspect_text=inspect,
                                           unknown_request_tools=tl.unknown_request_tools))
        pii = policy.pii
        if pii is not None and pii.enabled:
            from gatewise.guardrails.pii.engine import CustomRecognizer
            from gatewise.guardrails.pii.middleware import PIIMiddleware, PIIPolicy

            mw = PIIMiddleware(PIIPolicy(
                entities=dict(pii.entities), default_action=pii.action, use_ner=pii.ner,
                custom=tuple(CustomRecognizer(c.name, c.entity, tuple(c.patterns),
                                              tuple(c.context), c.score) for c in pii.custom),
                score_threshold=pii.min_score,
                detect=tuple(pii.detect) if pii.detect is not None else None),
                vault_store=self.vault_store, events=self.events, executor=self.checks,
                offload_chars=0 if pii.ner else self.config.offload_chars)
            self._pii.append(mw)
            self._pii_of[id(policy)] = mw
            out.append(mw)
        oc = policy.output
        if oc is not None and (oc.toxicity, oc.code, oc.groundedness) != ("off", "off", "off"):
            from gatewise.guardrails.output.checks import CodeCheck, GroundednessCheck, ToxicityCheck
            from gatewise.guardrails.output.middleware import OutputCheckMiddleware

            out.append(OutputCheckMiddleware(
                [(ToxicityCheck(), oc.toxicity), (CodeCheck(), oc.code),
                 (GroundednessCheck(oc.groundedness_threshold), oc.groundedness)],
                events=self.events))
        return out

    async def start(self) -> None:
        """Imports MCP servers' tools (listed through the MCP protocol)."""
        if self.tools is None:
            return
        for server, permission in self._mcp:
            await server.start()
            self._open_mcp.append(server)
            await self.tools.add_from_mcp(server, permission=permission)
        self._mcp.clear()

    async def aclose(self) -> None:
        for p in self._pii:
            p.close()
        self.checks.shutdown(wait=False, cancel_futures=True)
        for server in self._open_mcp:
            await server.aclose()
        self._open_mcp.clear()

    async def mask_texts(self, call: Call, texts: Sequence[tuple[str, bool]]) -> list[str]:
        """Texts the gateway keeps or sends on after a call (a stored Responses thread, a
        quality judge's prompt) masked under the PII policy that covers the call (its key's,
        else its team's, else its alias's, else the default), with the call's vault; as they
        are when no PII policy covers it. `texts`: (text, is JSON tool-call arguments)."""
        policy = self.middleware.policy_for(call) if self.middleware is not None else None
        pii = self._pii_of.get(id(policy)) if policy is not None else None
        if pii is None:
            return [t for t, _ in texts]
        return await pii.mask_texts(call, texts)

    async def mask_docs(self, call: Call, docs: list[Any]) -> list[Any]:
        """Copies of JSON documents the gateway keeps after the call, every conversation
        text masked by `mask_texts` in one pass (`guardrails/pii/documents.py`)."""
        if not self._pii:
            return docs
        from gatewise.guardrails.pii.documents import mask_docs

        return await mask_docs(self.mask_texts, call, docs)

    async def restore(self, tenant: str, conversation: str, doc: Any) -> Any:
        """`doc` (a copy) with the placeholders the conversation's (or thread's) vault still
        holds restored; `doc` itself when there is nothing to restore."""
        if not self._pii:
            return doc
        mapping = await self.restore_mapping(tenant, conversation)
        if not mapping:
            return doc
        from gatewise.guardrails.pii.documents import restore_doc

        return restore_doc(doc, mapping)

    async def restore_mapping(self, tenant: str, conversation: str) -> dict[str, str]:
        """What a conversation's (or a Responses thread's) PII vault can still restore
        (placeholder -> value): the shared copy and every policy's in-process one."""
        mapping: dict[str, str] = {}
        for p in self._pii:
            for ph, value in (await p.mapping_of(tenant, conversation)).items():
                mapping.setdefault(ph, value)
        return mapping

    async def forget_conversation(self, tenant: str, conversation: str) -> None:
        """A deleted conversation's PII vault goes with it: the shared copy and every
        policy's in-process one."""
        for p in self._pii:
            p.forget(tenant, conversation)
        if self.vault_store is not None:
            from gatewise.guardrails.pii.vault import vault_key

            await self.vault_store.delete(vault_key(tenant, conversation))

    async def warm(self) -> None:
        """Builds the analyzers and trains the injection classifier off the event loop."""
        for d in self._detectors.values():
            await asyncio.to_thread(d.warm_up)
        for p in self._pii:
            await p.warm()
