"""A REPL pipeline: the steps one user input runs through, read from YAML, and their runner.

    steps:
      - name: route                      # a small model sorts the input into a category
        model: fast
        prompt: "Answer with one word, billing or technical: {{ input }}"
      - name: tool                       # a model calls one of the pipeline's tools
        model: smart
        prompt: "Find what this {{ route }} question needs: {{ input }}"
        tools: [lookup_order]
      - name: answer                     # the last step: streamed, with the conversation
        model: balanced
        prompt: "Facts: {{ tool }}\\n\\nAnswer: {{ input }}"
    tools:
      - {name: lookup_order, description: ..., parameters: {...}, handler: "pkg.mod:fn"}

Each step is one chat call through the gateway, with its own model (an alias; none: the
gateway's default; every call says `metadata.step`, so a gateway whose `router.steps` maps
the step's name routes it there, whatever the model), prompt template (the project's
sandboxed Jinja engine, `gatewise.prompts`) and tools. A step's output is a variable named
after it for the steps after it: its text, or for a step that called tools, what the tools
returned. Only the last step sees the conversation and the system prompt, and only its answer
is kept in the conversation. The default pipeline is one `answer` step on the default alias
with the input as its prompt.

Everything the runner learns is handed to a `Sink` as it happens: the gateway's own steps
(route, cache, attempts, done, errors: `gatewise.pipeline.steps`), the streamed text and the
tool calls the REPL runs itself. Nothing is made up: figures come from the `done` steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

import msgspec
import yaml

from gatewise.errors import ConfigError
from gatewise.pipeline.core import ANONYMOUS
from gatewise.prompts.engine import TemplateEngine
from gatewise.tools import ToolRegistry, validate_tool_call
from gatewise.tools.loop import result_text
from gatewise.tools.validate import describe
from gatewise.types.messages import ToolCall

from .backends import Backend, BackendError, Completion

# A step's name is a template variable for the steps after it: a word.
StepName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class StepSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: StepName
    model: str | None = None
    prompt: str = "{{ input }}"
    tools: list[str] = msgspec.field(default_factory=list)
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None


class PipelineSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    steps: list[StepSpec]
    name: str = "default"
    tools: list[dict[str, Any]] = msgspec.field(default_factory=list)

    @property
    def answer(self) -> StepSpec:
        return self.steps[-1]


DEFAULT_PIPELINE = PipelineSpec(steps=[StepSpec(name="answer")])
_RESERVED = frozenset({"input", "system", "steps"})


def load_pipeline(path: str | Path) -> PipelineSpec:
    """The pipeline in a YAML file; every mistake is a `ConfigError` naming the file and key."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the pipeline: {exc.strerror}", file=str(p)) from None
    except yaml.YAMLError:
        raise ConfigError("invalid YAML", file=str(p)) from None
    return parse_pipeline(data, str(p))


def parse_pipeline(data: Any, file: str | None = None) -> PipelineSpec:
    try:
        spec = msgspec.convert(data, PipelineSpec)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(exc), file=file) from None
    if not spec.steps:
        raise ConfigError("a pipeline needs at least one step", file=file, path="steps")
    seen: set[str] = set()
    declared = {str(t.get("name")) for t in spec.tools}
    engine = TemplateEngine()
    for i, step in enumerate(spec.steps):
        where = f"steps[{i}]"
        if step.name in seen or step.name in _RESERVED:
            raise ConfigError(f"step name '{step.name}' is taken", file=file, path=f"{where}.name")
        seen.add(step.name)
        for tool in step.tools:
            if tool not in declared:
                raise ConfigError(f"names the tool '{tool}', which 'tools' does not declare",
                                  file=file, path=f"{where}.tools")
        try:
            engine.check(step.prompt, where=f"{where}.prompt")
        except Exception as exc:
            raise ConfigError(str(exc), file=file, path=f"{where}.prompt") from None
    return spec


def build_tools(spec: PipelineSpec) -> ToolRegistry:
    registry = ToolRegistry()
    if spec.tools:
        registry.add_from_config({"tools": spec.tools})
    return registry


class Sink(Protocol):
    """Where the runner reports, as it happens (the REPL's timeline)."""

    def step_started(self, step: str, model: str | None) -> None: ...

    def gateway_step(self, step: str, name: str, data: dict[str, Any]) -> None: ...

    def delta(self, step: str, text: str) -> None: ...

    def tool_ran(self, step: str, data: dict[str, Any]) -> None: ...

    def step_failed(self, step: str, error: BackendError) -> None: ...


@dataclass(slots=True)
class StepOutcome:
    name: str
    model: str | None
    output: str
    done: dict[str, Any] | None = None  # the gateway's `done` step: real usage, cost, timings


@dataclass(slots=True)
class Turn:
    """One user input through the pipeline."""

    input: str
    answer: str = ""
    steps: list[StepOutcome] = field(default_factory=list)
    error: str | None = None


class PipelineRunner:
    def __init__(self, spec: PipelineSpec, backend: Backend, *,
                 tools: ToolRegistry | None = None, offline: bool = False) -> None:
        """`offline`: every step on the gateway's default model (the embedded one), whatever
        its `model` says; `/model` still switches the answer step."""
        self.spec = spec
        self.backend = backend
        self.tools = tools if tools is not None else build_tools(spec)
        self.engine = TemplateEngine()
        self.offline = offline
        # `/model`: the answer step's alias for this session (None: the spec's).
        self.answer_model: str | None = None

    def model_of(self, step: StepSpec) -> str | None:
        if step is self.spec.answer and self.answer_model is not None:
            return self.answer_model
        return None if self.offline else step.model

    async def run(self, text: str, sink: Sink, *, history: list[dict[str, Any]] | None = None,
                  system: str | None = None) -> Turn:
        """Runs every step in order; a failed step ends the turn (its error is reported)."""
        turn = Turn(text)
        variables: dict[str, Any] = {"input": text, "system": system or ""}
        last = self.spec.answer
        for step in self.spec.steps:
            model = self.model_of(step)
            sink.step_started(step.name, model)
            prompt = self.engine.render(step.prompt, variables, where=f"{step.name}.prompt")
            messages: list[dict[str, Any]] = []
            sys_text = step.system if step.system is not None else (system if step is last else None)
            if sys_text:
                messages.append({"role": "system", "content": sys_text})
            if step is last and history:
                messages.extend(history)
            messages.append({"role": "user", "content": prompt})
            body: dict[str, Any] = {"messages": messages, "metadata": {"step": step.name}}
            if model is not None:
                body["model"] = model
            if step.max_tokens is not None:
                body["max_tokens"] = step.max_tokens
            if step.temperature is not None:
                body["temperature"] = step.temperature
            offered = [t.tool for t in self.tools.permitted(ANONYMOUS) if t.name in step.tools]
            if offered:
                body["tools"] = [msgspec.to_builtins(t) for t in offered]
            name = step.name
            seen_done: list[dict[str, Any]] = []

            def on_step(kind: str, data: dict[str, Any], name: str = name,
                        seen: list[dict[str, Any]] = seen_done) -> None:
                if kind == "done" and "branch" not in data:  # an orchestration's branch
                    seen.append(data)
                sink.gateway_step(name, kind, data)

            def on_delta(piece: str, name: str = name) -> None:
                sink.delta(name, piece)

            try:
                out = await self.backend.complete(body, on_step, on_delta)
            except BackendError as exc:
                sink.step_failed(name, exc)
                turn.error = f"{exc.type}: {exc.message}"
                return turn
            output = out.content
            if out.tool_calls:
                output = await self._run_tools(name, out, sink)
            variables[name] = output.strip()
            turn.steps.append(StepOutcome(name, model, output,
                                          seen_done[-1] if seen_done else None))
        turn.answer = turn.steps[-1].output if turn.steps else ""
        return turn

    async def _run_tools(self, step: str, out: Completion, sink: Sink) -> str:
        """Runs the calls the model made (validated against the pipeline's tools first) and
        returns what they gave, as the step's output."""
        results: list[str] = []
        for raw in out.tool_calls:
            call = msgspec.convert(raw, ToolCall)
            started = time.perf_counter()
            checked = validate_tool_call(call, self.tools, ANONYMOUS)
            data: dict[str, Any] = {"tool": call.function.name}
            if isinstance(checked, list):
                data["error"] = describe(checked)
                result = f"error: the call was rejected: {data['error']}"
            elif not checked.tool.executable:
                data["arguments"] = checked.arguments
                data["error"] = "this tool has no handler"
                result = "error: this tool has no handler"
            else:
                data["arguments"] = checked.arguments
                try:
                    result = result_text(await checked.tool.invoke(checked.arguments, ANONYMOUS))
                except Exception as exc:
                    data["error"] = f"{type(exc).__name__}: {exc}"
                    result = f"error: the tool failed: {data['error']}"
            data["result"] = result
            data["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
            sink.tool_ran(step, data)
            results.append(f"{call.function.name}: {result}")
        return "\n".join(results)

