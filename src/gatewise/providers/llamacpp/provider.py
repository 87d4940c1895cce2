"""The embedded local model behind the same `ProviderClient` protocol as every HTTP provider.

This module only translates: a canonical `ChatRequest` becomes chat-template messages and
llama.cpp sampling settings, and what the engine generates comes back as the same
`ChatCompletion` / `ChatCompletionChunk` shapes the HTTP adapters produce (role chunk, content
deltas, finish chunk, then a `choices: []` chunk with usage), so nothing above the provider can
tell a local answer from a remote one. Usage is counted by the model's own tokenizer.

Engines are shared per model file: two deployments naming the same GGUF share one loaded
model and one worker thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import msgspec

from gatewise.errors import ConfigError, InvalidRequestError
from gatewise.providers.base import Capabilities, Target
from gatewise.providers.common import embedding_base64, now
from gatewise.providers.llamacpp.engine import (
    PROVIDER,
    Generation,
    GenerationRequest,
    LlamaEngine,
    Sampling,
)
from gatewise.providers.llamacpp.grammar import Plan, parse_tool_calls, plan_for, tool_call_json
from gatewise.providers.llamacpp.models import LocalModel, ModelSpec, parse_spec, resolve_model
from gatewise.types.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from gatewise.types.ids import new_id
from gatewise.types.messages import (
    AssistantMessage,
    DeveloperMessage,
    FunctionCall,
    Message,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
    text_of,
)
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import (
    ChatCompletion,
    Choice,
    CompletionTokensDetails,
    PromptTokensDetails,
    ResponseMessage,
    Usage,
)
from gatewise.types.stream import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    DeltaFunctionCall,
    DeltaToolCall,
)

_FLOAT_PARAMS = ("temperature", "top_p", "min_p", "repeat_penalty", "presence_penalty",
                 "frequency_penalty")
_TOOL_START = ("{", "[", "`", "<")


class LlamaCppProvider:
    def __init__(self, *, cache_dir: str | None = None) -> None:
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], LocalModel] = {}
        self._engines: dict[str, LlamaEngine] = {}

    # --- ProviderClient ----------------------------------------------------------------------

    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion:
        engine = await self._engine(target)
        gen_req, plan = _generation_request(req, target, engine.model.spec, stream=False)
        gen = await engine.generate(gen_req, key=req.user or "")
        content: str | None = gen.text
        tool_calls: list[ToolCall] | None = None
        finish = gen.finish_reason
        calls = parse_tool_calls(gen.text, plan.tool_names) if plan.tool_names else None
        if calls:
            content, finish = None, "tool_calls"
            tool_calls = [ToolCall(id=_call_id(), type="function",
                                   function=FunctionCall(name=n, arguments=a)) for n, a in calls]
        return ChatCompletion(
            id=new_id(),
            created=now(),
            model=target.model,
            choices=[Choice(index=0, finish_reason=finish,
                            message=ResponseMessage(content=content, tool_calls=tool_calls),
                            stop_sequence=_stop_of(gen, finish))],
            usage=_usage(gen),
        )

    async def stream(self, req: ChatRequest,
                     target: Target) -> AsyncGenerator[ChatCompletionChunk, None]:
        engine = await self._engine(target)
        gen_req, plan = _generation_request(req, target, engine.model.spec, stream=True)
        cid, created, model = new_id(), now(), target.model

        def chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(id=cid, created=created, model=model, choices=[
                ChunkChoice(index=0, delta=delta, finish_reason=finish)])

        # Tool calls cannot be streamed as text: a required call is held to the end, and with
        # "auto" an answer that opens like JSON is held until it is known to be (or not be) one.
        holding = plan.mode == "tool_required"
        undecided = plan.mode == "tool_auto"
        held = ""
        result: Generation | None = None
        async with aclosing(engine.stream(gen_req, key=req.user or "")) as events:
            async for kind, value in events:
                if kind == "start":
                    yield chunk(Delta(role="assistant", content=None if holding else ""))
                elif kind == "text":
                    if undecided:
                        held += value
                        head = held.lstrip()
                        if not head:
                            continue
                        undecided = False
                        holding = head.startswith(_TOOL_START)
                        if holding:
                            continue
                        value, held = held, ""
                    if holding:
                        held += value
                    else:
                        yield chunk(Delta(content=value))
                elif kind == "done":
                    result = value
        assert result is not None
        finish = result.finish_reason
        text = held if (holding or undecided) else ""
        calls = parse_tool_calls(result.text, plan.tool_names) if plan.tool_names else None
        if calls:
            finish = "tool_calls"
            for i, (name, args) in enumerate(calls):
                yield chunk(Delta(tool_calls=[DeltaToolCall(
                    index=i, id=_call_id(), type="function",
                    function=DeltaFunctionCall(name=name, arguments=""))]))
                yield chunk(Delta(tool_calls=[DeltaToolCall(
                    index=i, function=DeltaFunctionCall(arguments=args))]))
        elif text:
            yield chunk(Delta(content=text))
        last = chunk(Delta(), finish)
        last.choices[0].stop_sequence = _stop_of(result, finish)
        yield last
        yield ChatCompletionChunk(id=cid, created=created, model=model, choices=[],
                                  usage=_usage(result))

    async def embed(self, req: EmbeddingRequest, target: Target) -> EmbeddingResponse:
        if isinstance(req.input, list) and not all(isinstance(x, str) for x in req.input):
            raise InvalidRequestError("the local model embeds text; token-id input is not "
                                      "supported", param="input")
        engine = await self._engine(target)
        vectors, tokens = await engine.embed(req.texts, key=req.user or "")
        if req.dimensions is not None and vectors and req.dimensions != len(vectors[0]):
            raise InvalidRequestError(f"this model's embeddings have {len(vectors[0])} "
                                      f"dimensions, not {req.dimensions}", param="dimensions")
        data = [Embedding(index=i, embedding=_encode_vector(v, req.encoding_format))
                for i, v in enumerate(vectors)]
        return EmbeddingResponse(data=data, model=target.model,
                                 usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))

    async def validate_key(self, target: Target) -> None:
        """No key to check: proves instead that the model file resolves (no load)."""
        await self._engine(target)

    def capabilities(self, target: Target) -> Capabilities:
        spec = parse_spec(target.model, _spec_of(target))
        return Capabilities(chat=True, streaming=True, tools=True, vision=False,
                            json_schema=True, embeddings=True, context_window=spec.n_ctx)

    async def aclose(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
            self._models.clear()
        for engine in engines:
            await engine.aclose()

    # --- local extras ------------------------------------------------------------------------

    async def warmup(self, target: Target) -> None:
        """Loads the model now, so the first request does not pay for it."""
        await (await self._engine(target)).warmup()

    def model_state(self, target: Target) -> str:
        """`loaded`, `not_loaded` or `failed:<error type>`, without loading or resolving
        anything: the health check of an in-process model (generating text to probe it would
        take the model from the requests waiting for it)."""
        model = self._models.get(_model_key(target))
        engine = self._engines.get(model.path) if model else None
        return engine.state() if engine is not None else "not_loaded"

    def queued(self, target: Target) -> int:
        """Requests waiting for this target's model (the one generating is not counted)."""
        model = self._models.get(_model_key(target))
        engine = self._engines.get(model.path) if model else None
        return engine.queued() if engine else 0

    async def _engine(self, target: Target) -> LlamaEngine:
        model = self._models.get(_model_key(target))
        if model is not None:
            engine = self._engines.get(model.path)
            if engine is not None:
                return engine
        # Resolving may join half a gigabyte of chunks: never on the event loop.
        return await asyncio.to_thread(self._open, target)

    def _open(self, target: Target) -> LlamaEngine:
        key = _model_key(target)
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = resolve_model(target.model, _spec_of(target), cache_dir=self._cache_dir)
                self._models[key] = model
            engine = self._engines.get(model.path)
            if engine is None:
                engine = self._engines[model.path] = LlamaEngine(model)
            return engine


def _spec_of(target: Target) -> Mapping[str, Any]:
    spec = target.extra.get("local_model", {})
    if not isinstance(spec, Mapping):
        raise ConfigError("'local_model' must be a mapping", path=f"{target.ref}.local_model")
    return spec


def _model_key(target: Target) -> tuple[str, str]:
    return target.model, json.dumps(_spec_of(target), sort_keys=True, default=str)


def _generation_request(req: ChatRequest, target: Target, spec: ModelSpec, *,
                        stream: bool) -> tuple[GenerationRequest, Plan]:
    if req.n is not None and req.n > 1:
        raise InvalidRequestError("the local model generates one choice per request; 'n' must "
                                  "be 1", param="n")
    plan = plan_for(req)
    params = target.params
    limit = req.output_limit or _int_param(params, "max_tokens", target)
    stop = req.stop if req.stop is not None else params.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    return GenerationRequest(
        messages=flatten_messages(req.messages, plan.instructions),
        sampling=_sampling(req, target, spec),
        max_tokens=limit,
        stop=stops,
        schema=plan.schema,
        stream=stream,
    ), plan


def _sampling(req: ChatRequest, target: Target, spec: ModelSpec) -> Sampling:
    """Request, then deployment params, then the catalog's recommendation, then llama.cpp's."""
    merged: dict[str, float] = dict(spec.sampling)
    for k in (*_FLOAT_PARAMS, "top_k"):
        if k in target.params:
            try:
                merged[k] = float(target.params[k])
            except (TypeError, ValueError):
                raise ConfigError(f"'{k}' must be a number", path=f"{target.ref}.params.{k}") \
                    from None
    for k in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        v = getattr(req, k)
        if v is not None:
            merged[k] = float(v)
    out = Sampling(seed=req.seed if req.seed is not None else _int_param(target.params, "seed",
                                                                          target))
    for k in _FLOAT_PARAMS:
        if k in merged:
            setattr(out, k, merged[k])
    if "top_k" in merged:
        out.top_k = int(merged["top_k"])
    if req.logit_bias:
        try:
            out.logit_bias = {int(k): float(v) for k, v in req.logit_bias.items()}
        except ValueError:
            raise InvalidRequestError("'logit_bias' keys must be token ids",
                                      param="logit_bias") from None
    return out


def _int_param(params: Mapping[str, Any], key: str, target: Target) -> int | None:
    v = params.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"'{key}' must be an integer", path=f"{target.ref}.params.{key}")
    return v


def flatten_messages(messages: list[Message], instructions: str | None) -> list[dict[str, str]]:
    """Messages as plain system/user/assistant text, the one shape every chat template takes.

    Tool calls are written the way the model is taught to make them, and tool results become
    user turns that name the call they answer; consecutive turns of one role are merged
    because some templates insist on alternation.
    """
    out: list[dict[str, str]] = []
    call_names: dict[str, str] = {}
    for i, m in enumerate(messages):
        if isinstance(m, SystemMessage | DeveloperMessage):
            role, text = "system", text_of(m.content)
        elif isinstance(m, UserMessage):
            if not isinstance(m.content, str) and not all(isinstance(p, TextPart)
                                                          for p in m.content):
                raise InvalidRequestError("the local model reads text only; remove image, "
                                          "audio and file parts", param=f"messages[{i}].content")
            role, text = "user", text_of(m.content)
        elif isinstance(m, AssistantMessage):
            pieces = [text_of(m.content)]
            for call in m.tool_calls or []:
                call_names[call.id] = call.function.name
                pieces.append(tool_call_json(call.function.name, call.function.arguments))
            role, text = "assistant", "\n".join(p for p in pieces if p)
        else:
            assert isinstance(m, ToolMessage)
            name = call_names.get(m.tool_call_id, "tool")
            role = "user"
            text = f"Result of tool call {name} ({m.tool_call_id}):\n{text_of(m.content)}"
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})
    if instructions:
        if out and out[0]["role"] == "system":
            out[0]["content"] += "\n\n" + instructions
        else:
            out.insert(0, {"role": "system", "content": instructions})
    return out


def _usage(gen: Generation) -> Usage:
    return Usage(
        prompt_tokens=gen.prompt_tokens,
        completion_tokens=gen.completion_tokens,
        total_tokens=gen.prompt_tokens + gen.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=gen.cached_tokens),
        completion_tokens_details=CompletionTokensDetails(),
    )


def _call_id() -> str:
    return "call_" + os.urandom(12).hex()


def _encode_vector(v: list[float], fmt: str | None) -> list[float] | str:
    if fmt == "base64":  # OpenAI's: little-endian float32, base64
        return embedding_base64(v)
    return v


__all__ = ["PROVIDER", "LlamaCppProvider", "flatten_messages"]


def _stop_of(gen: Generation, finish: str | None) -> str | msgspec.UnsetType:
    """The caller's stop sequence that ended a text answer (`Choice.stop_sequence`)."""
    if finish == "stop" and gen.stop_sequence is not None:
        return gen.stop_sequence
    return msgspec.UNSET
