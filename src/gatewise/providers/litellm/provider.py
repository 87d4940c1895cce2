"""LiteLLM in process: the long tail of providers behind the same `ProviderClient` protocol.

A deployment `model: litellm/<litellm model string>` runs here. LiteLLM is an optional extra
whose import costs seconds, so nothing imports it at module level: the first call (or
`warmup`) imports it in a worker thread, after `gatewise.config.litellm_env` has switched
off its import-time downloads. The canonical request goes in as OpenAI-shaped keyword
arguments and LiteLLM's pydantic objects come back through `msgspec.convert` into the
canonical types, so nothing above this module ever sees a LiteLLM object or exception.
Retries and fallbacks stay gatewise's (they are middleware): LiteLLM is always called with
`num_retries=0` and `max_retries=0`, so one attempt here is one request upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import threading
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec

from gatewise.config.litellm_env import apply_litellm_env_defaults
from gatewise.errors import ConfigError, ProviderResponseError
from gatewise.providers.base import Capabilities, Target
from gatewise.providers.litellm.errors import map_exception
from gatewise.types.embeddings import EmbeddingRequest, EmbeddingResponse
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice

INSTALL_HINT = "the 'litellm' provider needs LiteLLM: pip install 'gatewise[litellm]'"
_NOT_REQUEST_KWARGS = ("model", "stream", "stream_options")

T = TypeVar("T")


def load_litellm() -> Any:
    """Imports LiteLLM once, offline. Also flips two of its process-wide switches (only while
    they still hold LiteLLM's defaults): its "Give Feedback / Get Help" banner printed on every
    error, and Hugging Face tokenizer downloads when it has to count tokens itself."""
    apply_litellm_env_defaults()
    try:
        lib: Any = importlib.import_module("litellm")
    except ImportError as exc:
        raise ConfigError(f"{INSTALL_HINT} ({exc})") from None
    if getattr(lib, "suppress_debug_info", True) is False:
        lib.suppress_debug_info = True
    if hasattr(lib, "disable_hf_tokenizer_download") and lib.disable_hf_tokenizer_download is None:
        lib.disable_hf_tokenizer_download = True
    return lib


class LiteLLMProvider:
    def __init__(self) -> None:
        self._lib: Any = None
        self._lock = threading.Lock()
        # LiteLLM >= 1.7x imports its MCP gateway (a proxy-only dependency) whenever `tools` are
        # passed; the private flag it uses internally skips that. It exists exactly where the
        # MCP handler does, so it is only sent to versions that have one.
        self._skip_mcp = False
        self._caps: dict[str, Capabilities] = {}

    # --- loading -------------------------------------------------------------------------

    def _load(self) -> Any:
        with self._lock:
            if self._lib is None:
                lib = load_litellm()
                self._skip_mcp = importlib.util.find_spec("litellm.responses.mcp") is not None
                self._lib = lib
            return self._lib

    async def _litellm(self) -> Any:
        lib = self._lib
        if lib is None:
            # Seconds of import must not stall the event loop other requests are served on.
            lib = await asyncio.to_thread(self._load)
        return lib

    async def warmup(self, target: Target) -> None:
        """Imports LiteLLM at start-up instead of on the first request."""
        await self._litellm()

    # --- ProviderClient ------------------------------------------------------------------

    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion:
        lib = await self._litellm()
        try:
            resp = await lib.acompletion(**self._chat_kwargs(req, target, stream=False))
        except Exception as exc:
            raise map_exception(lib, exc, target) from None
        return to_completion(resp, target)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[ChatCompletionChunk]:
        """LiteLLM's chunks, cleaned to OpenAI's shape: empty chunks are dropped and usage is
        moved to one final `choices: []` chunk. LiteLLM ends a stream that was cut short with
        a `finish_reason: "stop"` of its own making, so chunks from the first finish_reason on
        are held until the end, and a stream whose provider never said it finished raises
        `ProviderResponseError` instead of passing as a complete answer."""
        lib = await self._litellm()
        try:
            wrapper = await lib.acompletion(**self._chat_kwargs(req, target, stream=True))
        except Exception as exc:
            raise map_exception(lib, exc, target) from None
        usage = None
        held: list[ChatCompletionChunk] = []
        source = wrapper.__aiter__()
        try:
            while True:
                try:
                    raw = await source.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise map_exception(lib, exc, target) from None
                chunk = to_chunk(raw, target)
                if chunk.usage is not None:
                    usage, chunk.usage = chunk.usage, None
                chunk.choices = [c for c in chunk.choices if _carries_something(c)]
                if not chunk.choices:
                    continue
                if held or any(c.finish_reason is not None for c in chunk.choices):
                    held.append(chunk)
                else:
                    yield chunk
        finally:
            await _close_quietly(wrapper)
        if not held or not _provider_finished(wrapper):
            raise ProviderResponseError("stream ended before the provider finished it",
                                        provider=target.provider, model=target.model)
        for chunk in held:
            yield chunk
        if usage is not None:
            last = held[-1]
            yield ChatCompletionChunk(id=last.id, created=last.created, model=last.model,
                                      choices=[], usage=usage,
                                      system_fingerprint=last.system_fingerprint)

    async def embed(self, req: EmbeddingRequest, target: Target) -> EmbeddingResponse:
        lib = await self._litellm()
        kwargs = _request_kwargs(req, target)
        kwargs.update(_connection_kwargs(target, stream=False))
        try:
            resp = await lib.aembedding(model=target.model, **kwargs)
        except Exception as exc:
            raise map_exception(lib, exc, target) from None
        return to_embedding_response(resp, target)

    async def validate_key(self, target: Target) -> None:
        """Proves the deployment's key with the cheapest call every LiteLLM provider has: a
        one-token completion (a one-word embedding for embedding models). LiteLLM has no
        uniform authenticated no-cost call, and its `check_valid_key` makes the same request
        synchronously while turning every failure into `False`; here failures keep their
        meaning (bad key, unknown model, rate limit, unreachable host)."""
        lib = await self._litellm()
        conn = _connection_kwargs(target, stream=False)
        try:
            if self.capabilities(target).embeddings and not self.capabilities(target).chat:
                await lib.aembedding(model=target.model, input=["ping"], **conn)
            else:
                # A fresh list each time: LiteLLM may rewrite the messages it is given.
                await lib.acompletion(model=target.model, max_tokens=1,
                                      messages=[{"role": "user", "content": "ping"}], **conn)
        except Exception as exc:
            raise map_exception(lib, exc, target) from None

    def capabilities(self, target: Target) -> Capabilities:
        """From LiteLLM's model map (`get_model_info`); a model it has not mapped (a custom
        deployment, a fine-tune) is assumed to be a chat model with tools. Loads LiteLLM
        synchronously if no call or warmup has yet."""
        caps = self._caps.get(target.model)
        if caps is None:
            lib = self._lib if self._lib is not None else self._load()
            caps = capabilities_from(lib, target.model)
            self._caps[target.model] = caps
        return caps

    async def aclose(self) -> None:
        if self._lib is not None:
            await close_loop_clients(self._lib)

    # --- request building ----------------------------------------------------------------

    def _chat_kwargs(self, req: ChatRequest, target: Target, *, stream: bool) -> dict[str, Any]:
        kwargs = _request_kwargs(req, target)
        kwargs.update(_connection_kwargs(target, stream=stream))
        kwargs["model"] = target.model
        if stream:
            # Always asked for, so accounting gets real numbers; the pipeline hides the usage
            # chunk from callers who did not ask for it.
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        if self._skip_mcp and req.tools:
            kwargs["_skip_mcp_handler"] = True
        return kwargs


def _request_kwargs(req: ChatRequest | EmbeddingRequest, target: Target) -> dict[str, Any]:
    """The canonical body as LiteLLM keyword arguments; deployment `params` fill what the
    caller left unset (they may also be LiteLLM's own, e.g. `aws_region_name`, `drop_params`)."""
    body: dict[str, Any] = msgspec.to_builtins(req)
    for key in _NOT_REQUEST_KWARGS:
        body.pop(key, None)
    for key, value in target.params.items():
        body.setdefault(key, value)
    return body


def _connection_kwargs(target: Target, *, stream: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_retries": 0, "max_retries": 0}
    if target.api_base:
        kwargs["api_base"] = target.api_base
    if target.api_key:
        kwargs["api_key"] = target.api_key
    if target.api_version:
        kwargs["api_version"] = target.api_version
    if target.headers:
        kwargs["extra_headers"] = dict(target.headers)
    # A float is httpx's per-operation timeout: for a stream that bounds each gap between
    # chunks (a stall), not the whole stream.
    timeout = target.timeouts.read if stream else target.timeouts.total
    if timeout is not None:
        kwargs["timeout"] = timeout
    return kwargs


# --- response conversion -----------------------------------------------------------------

def _dump(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    return dump(warnings=False) if callable(dump) else obj


def _drop_nones(value: Any) -> Any:
    """LiteLLM reports token details it does not know as null; the canonical counters are ints
    that default to 0."""
    if isinstance(value, dict):
        return {k: _drop_nones(v) for k, v in value.items() if v is not None}
    return value


def _normalize(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    if isinstance(data.get("usage"), dict):
        data["usage"] = _drop_nones(data["usage"])
    elif "usage" in data:
        data["usage"] = None
    for choice in data.get("choices") or ():
        if isinstance(choice, dict):
            choice.setdefault("finish_reason", None)
            message = choice.get("message")
            if isinstance(message, dict):
                message.setdefault("content", None)
    return data


def _convert(obj: Any, kind: type[T], target: Target, what: str) -> T:
    try:
        return msgspec.convert(_normalize(_dump(obj)), kind)
    except (msgspec.ValidationError, TypeError, ValueError, AttributeError) as exc:
        raise ProviderResponseError(f"LiteLLM returned an unexpected {what}: {exc}",
                                    provider=target.provider, model=target.model) from None


def to_completion(resp: Any, target: Target) -> ChatCompletion:
    return _convert(resp, ChatCompletion, target, "chat completion")


def to_chunk(raw: Any, target: Target) -> ChatCompletionChunk:
    return _convert(raw, ChatCompletionChunk, target, "stream chunk")


def to_embedding_response(resp: Any, target: Target) -> EmbeddingResponse:
    data = _dump(resp)
    if isinstance(data, dict):
        if not isinstance(data.get("usage"), dict):
            data["usage"] = {}
        if not data.get("model"):
            data["model"] = target.model
    return _convert(data, EmbeddingResponse, target, "embeddings response")


def _carries_something(choice: ChunkChoice) -> bool:
    d = choice.delta
    return choice.finish_reason is not None or d.role is not None or d.content is not None \
        or d.tool_calls is not None or d.refusal is not None


def _provider_finished(wrapper: Any) -> bool:
    """Whether the provider itself sent a finish reason (LiteLLM's stream wrapper records it
    apart from the one it reports); wrappers without that record are taken at their word."""
    if not hasattr(wrapper, "received_finish_reason"):
        return True
    return wrapper.received_finish_reason is not None \
        or getattr(wrapper, "intermittent_finish_reason", None) is not None


def capabilities_from(lib: Any, model: str) -> Capabilities:
    try:
        info = lib.get_model_info(model=model)
    except Exception:
        return Capabilities()
    window = info.get("max_input_tokens") or info.get("max_tokens")
    context = window if isinstance(window, int) else None
    if info.get("mode") == "embedding":
        return Capabilities(chat=False, streaming=False, tools=False, json_schema=False,
                            embeddings=True, context_window=context)
    return Capabilities(
        streaming=info.get("supports_native_streaming") is not False,
        tools=bool(info.get("supports_function_calling")),
        vision=bool(info.get("supports_vision")),
        json_schema=bool(info.get("supports_response_schema")),
        context_window=context,
    )


# --- cleanup -----------------------------------------------------------------------------

async def _close_quietly(obj: Any) -> None:
    close = getattr(obj, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


def loop_suffix(cache: Any) -> str:
    """How LiteLLM ends the cache keys of clients made on the running loop: `-<id(loop)>` in
    older releases, `-<loop token>` in newer ones; asking the cache covers both."""
    scope = getattr(cache, "update_cache_key_with_event_loop", None)
    if callable(scope):
        return str(scope(""))
    return f"-{id(asyncio.get_running_loop())}"


async def close_loop_clients(lib: Any) -> None:
    """LiteLLM caches its HTTP clients process-wide, keyed by settings and event loop, and
    never closes them; the ones made on this loop would outlive it as open sockets. They are
    closed (and forgotten, so a later call builds fresh ones) when the gateway closes."""
    cache = getattr(lib, "in_memory_llm_clients_cache", None)
    entries = getattr(cache, "cache_dict", None)
    if cache is None or not isinstance(entries, dict):
        return
    suffix = loop_suffix(cache)
    for key in [k for k in entries if isinstance(k, str) and k.endswith(suffix)]:
        client = entries.get(key)
        cache.delete_cache(key)
        close = getattr(client, "aclose", None) or getattr(client, "close", None)
        if close is None:
            continue
        with contextlib.suppress(Exception):
            result = close()
            if inspect.isawaitable(result):
                await result


__all__ = ["INSTALL_HINT", "LiteLLMProvider", "load_litellm"]
