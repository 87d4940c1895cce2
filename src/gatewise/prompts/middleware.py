"""The two places prompts touch a call.

`PromptMiddleware`, once per call and before the usage ledger (a request refused here stores
nothing: no usage record, no reservation, no cache entry): when the request names a template
(`metadata.prompt`, with `metadata.prompt_variables` as a JSON object; the library's
`template=`/`variables=`; or an alias bound to one in `prompts.aliases`), it checks the
variables, renders the template, picks the few-shot examples, and puts the result in front of
the request's own messages. Everything after it (guardrails, budgets, the cache key) sees the
rendered request. A request that names no template costs one metadata lookup.

`PromptFormatMiddleware`, once per attempt (the deployment is known): lays the template out
in the deployment's model format and shapes system messages for models without a system role
(`formats`), for that attempt only, so a fallback to another provider family gets its own
format. A request with no template to a model with the default format costs one cached lookup.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.pipeline.core import Call, Handler
from gatewise.prompts.engine import TemplateEngine
from gatewise.prompts.fewshot import FewShotSelector
from gatewise.prompts.formats import DEFAULT, FormatTable, ModelFormat, apply_system_style
from gatewise.prompts.registry import PromptRegistry
from gatewise.prompts.render import RenderedPrompt, render_parts
from gatewise.prompts.spec import VARIABLES_PARAM, bind_variables, parse_ref
from gatewise.types.messages import Message, UserMessage, text_of
from gatewise.types.requests import ChatRequest

PROMPT_KEY = "prompt"
VARIABLES_KEY = VARIABLES_PARAM
# A request must carry a message; one whose only message is an empty user turn, naming a
# template that brings its own turns, sends just the template's (the library sends this when
# given `template=` and no messages).
EMPTY_TURN: dict[str, Any] = {"role": "user", "content": ""}


def parse_variables(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidRequestError("metadata.prompt_variables must be a JSON object",
                                  param=f"metadata.{VARIABLES_KEY}") from None
    if not isinstance(value, dict):
        raise InvalidRequestError("metadata.prompt_variables must be a JSON object",
                                  param=f"metadata.{VARIABLES_KEY}")
    return value


def last_user_text(messages: list[Message]) -> str:
    for m in reversed(messages):
        if isinstance(m, UserMessage):
            return text_of(m.content)
    return ""


class PromptMiddleware:
    def __init__(self, registry: PromptRegistry, engine: TemplateEngine,
                 selector: FewShotSelector, *, aliases: Mapping[str, str],
                 counter: Callable[[str], Callable[[str], int]]) -> None:
        """`aliases`: model alias → template reference; `counter(alias)`: a token counter for
        the alias's model (few-shot budgets)."""
        self.registry = registry
        self.engine = engine
        self.selector = selector
        self.aliases = dict(aliases)
        self.counter = counter

    def __call__(self, call: Call, next: Handler) -> Coroutine[Any, Any, Any]:
        # A plain `def` (`pipeline.core.Middleware`): a call without a template gets no
        # coroutine of this stage.
        if call.kind != "chat":
            return next(call)
        req = call.chat_request
        md = req.metadata
        if isinstance(call.prompt, tuple):
            ref, variables = call.prompt
        elif md is not None and PROMPT_KEY in md:
            ref, variables = md[PROMPT_KEY], parse_variables(md.get(VARIABLES_KEY))
        elif call.alias in self.aliases:
            ref, variables = self.aliases[call.alias], parse_variables(md.get(VARIABLES_KEY)
                                                                   if md else None)
        else:
            return next(call)
        return self._rendered(call, next, req, ref, variables)

    async def _rendered(self, call: Call, next: Handler, req: ChatRequest, ref: str,
                        variables: dict[str, Any] | None) -> Any:
        call.request, rendered = await self.prepare(req, ref, variables, alias=call.alias)
        call.prompt = rendered
        call.event("prompt", prompt=rendered.name, version=rendered.version,
                   examples=len(rendered.examples))
        return await next(call)

    async def render(self, req: ChatRequest, ref: str, variables: dict[str, Any] | None, *,
                     alias: str) -> RenderedPrompt:
        """The template `ref` rendered for `req` (checks, rendering, example selection)."""
        spec = await self.registry.get(parse_ref(ref))
        bound = bind_variables(spec, variables)
        rendered = render_parts(self.engine, spec.name, spec.version, spec.template, bound)
        ex = spec.template.examples
        if ex is not None:
            query = last_user_text(req.messages) or last_user_text(rendered.turns)
            rendered.examples = await self.selector.select(
                ex.set, query, k=ex.k, budget_tokens=ex.budget_tokens,
                count=self.counter(alias))
        return rendered

    async def prepare(self, req: ChatRequest, ref: str, variables: dict[str, Any] | None, *,
                      alias: str) -> tuple[ChatRequest, RenderedPrompt]:
        """`req` with the template in front of its messages (default format), its
        `response_format` if it had none, and the prompt keys gone from its metadata; and the
        rendered template."""
        rendered = await self.render(req, ref, variables, alias=alias)
        md = {k: v for k, v in (req.metadata or {}).items()
              if k not in (PROMPT_KEY, VARIABLES_KEY)}
        own = list(req.messages)
        if rendered.turns and len(own) == 1 and own[0] == UserMessage(content=""):
            own = []
        return msgspec.structs.replace(
            req, messages=rendered.messages(DEFAULT, own),
            response_format=req.response_format or rendered.response_format,
            metadata=md or None), rendered


class PromptFormatMiddleware:
    def __init__(self, table: FormatTable) -> None:
        self.table = table

    def __call__(self, call: Call, next: Handler) -> Coroutine[Any, Any, Any]:
        # A plain `def` (`pipeline.core.Middleware`): a model in the default format gets no
        # coroutine of this stage.
        dep = call.deployment
        if dep is None or call.kind != "chat":
            return next(call)
        fmt = self.table.lookup(dep.target.provider, dep.target.model)
        if fmt == DEFAULT:
            return next(call)
        return self._formatted(call, next, fmt)

    async def _formatted(self, call: Call, next: Handler, fmt: ModelFormat) -> Any:
        dep = call.deployment
        assert dep is not None
        rendered = call.prompt if isinstance(call.prompt, RenderedPrompt) else None
        req = call.chat_request
        messages = list(req.messages)
        if rendered is not None and (fmt.sections, fmt.examples) != (DEFAULT.sections,
                                                                     DEFAULT.examples):
            default = rendered.prefix(DEFAULT)
            n = len(default)
            # Only while the request still starts with the template's messages as rendered
            # (a middleware may have put history in front): then swap in this format's layout.
            if messages[:n] == default:
                messages = [*rendered.prefix(fmt), *messages[n:]]
        messages = apply_system_style(messages, fmt.system)
        if messages == list(req.messages):
            return await next(call)
        original = call.request
        call.request = msgspec.structs.replace(req, messages=messages)
        call.event("prompt_format", deployment=dep.id, system=fmt.system, sections=fmt.sections)
        try:
            return await next(call)
        finally:
            call.request = original
