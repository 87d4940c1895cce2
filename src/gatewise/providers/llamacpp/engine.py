"""Runs one local model in this process without ever blocking the event loop.

A llama.cpp context is not thread-safe and generation is CPU-bound, so each model file gets one
`llama_cpp.Llama`, loaded once and owned by ONE dedicated worker thread; every request becomes
a job on that thread. Jobs queue fairly: round-robin across callers (the request's `user`),
FIFO within a caller, so one client sending a burst cannot starve the others. Tokens cross to
the event loop with `loop.call_soon_threadsafe` into the request's own `asyncio.Queue` (no
polling), and a consumer that goes away flips a flag the worker reads before every token, so a
disconnected client stops costing CPU at the next token. A job still waiting is simply taken
out of the queue.

`llama_cpp` is imported on the worker thread when the model first loads: it is an optional
extra, and importing it costs more than `import gatewise` may.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import threading
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from gatewise.errors import (
    ConfigError,
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderConnectionError,
)
from gatewise.providers.llamacpp.grammar import GrammarCache, StopText
from gatewise.providers.llamacpp.models import LocalModel
from gatewise.providers.llamacpp.runtime import import_llama_cpp

PROVIDER = "llamacpp"
DEFAULT_MAX_TOKENS = 512
_EMBED_BATCH_CAP = 2048


@dataclass(slots=True)
class Sampling:
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    logit_bias: Mapping[int, float] | None = None


@dataclass(slots=True)
class GenerationRequest:
    messages: list[dict[str, str]]
    sampling: Sampling = field(default_factory=Sampling)
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None
    stream: bool = False


@dataclass(slots=True, frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    finish_reason: str
    # The caller's stop sequence that ended the text (not the chat template's end marker).
    stop_sequence: str | None = None


class Job:
    """One request on a worker: `run(model, job)` on the thread, events back on the loop."""

    __slots__ = ("aborted", "cancelled", "events", "key", "loop", "run")

    def __init__(self, key: str, run: Callable[[Any, Job], Any],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.run = run
        self.loop = loop
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.cancelled = False  # nobody is listening any more
        self.aborted = False  # the engine is shutting down

    @property
    def stopped(self) -> bool:
        return self.cancelled or self.aborted

    def emit(self, kind: str, value: Any) -> None:
        if self.cancelled:
            return
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: the caller is gone
            self.cancelled = True


class ModelWorker:
    """One thread, one model, one fair queue."""

    def __init__(self, name: str, load: Callable[[], Any], unload: Callable[[Any], None],
                 closed_error: Callable[[], Exception]) -> None:
        self.name = name
        self._load = load
        self._unload = unload
        self._closed_error = closed_error
        self._cond = threading.Condition()
        self._queues: OrderedDict[str, deque[Job]] = OrderedDict()
        self._current: Job | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        # Health checks read these (no generation needed to know the model is there): set
        # by the worker thread once the model loaded, or with the type of what failed.
        self.loaded = False
        self.load_error: str | None = None

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise self._closed_error()
            self._queues.setdefault(job.key, deque()).append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def withdraw(self, job: Job) -> bool:
        with self._cond:
            waiting = self._queues.get(job.key)
            if waiting is None or job not in waiting:
                return False
            waiting.remove(job)
            if not waiting:
                del self._queues[job.key]
            return True

    def queued(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def close(self) -> threading.Thread | None:
        """Fails waiting jobs, stops the running one at its next token; returns the thread."""
        with self._cond:
            self._closed = True
            waiting = [j for q in self._queues.values() for j in q]
            self._queues.clear()
            if self._current is not None:
                self._current.aborted = True
            self._cond.notify_all()
        for job in waiting:
            job.emit("error", self._closed_error())
        return self._thread

    def _take(self) -> Job | None:
        with self._cond:
            self._current = None
            while not self._queues and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            key, waiting = next(iter(self._queues.items()))
            job = waiting.popleft()
            del self._queues[key]
            if waiting:  # this caller goes to the back of the line
                self._queues[key] = waiting
            self._current = job
            return job

    def _run(self) -> None:
        model: Any = None
        try:
            while (job := self._take()) is not None:
                if job.cancelled:
                    continue
                try:
                    if model is None:
                        try:
                            model = self._load()
                        except Exception as exc:
                            self.load_error = type(exc).__name__
                            raise
                        self.loaded, self.load_error = True, None
                    result = job.run(model, job)
                except Exception as exc:
                    job.emit("error", exc)
                else:
                    job.emit("done", result)
        finally:
            self.loaded = False
            if model is not None:
                self._unload(model)


class _ChatModel:
    """What the chat worker thread owns: the model, its chat template and its grammars."""

    def __init__(self, lib: Any, llm: Any, chat_format: str | None) -> None:
        self.lib = lib
        self.llm = llm
        self.vocab = llm._model.vocab
        self.n_ctx: int = llm.n_ctx()
        self.format = _chat_formatter(lib, llm, chat_format)
        self.grammars = GrammarCache(lib.LlamaGrammar.from_json_schema, self._grammar_ok)
        self.numpy = importlib.import_module("numpy")

    def _grammar_ok(self, gbnf: str) -> bool:
        sampler = self.lib.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        if not sampler:
            return False
        self.lib.llama_sampler_free(sampler)
        return True


class LlamaEngine:
    def __init__(self, model: LocalModel) -> None:
        self.model = model
        self._chat = ModelWorker(f"gatewise-llamacpp-{model.name}", self._load_chat,
                                 _close_model, self._closed_error)
        self._embedder = ModelWorker(f"gatewise-llamacpp-{model.name}-embed",
                                     self._load_embedder, _close_model, self._closed_error)

    def queued(self) -> int:
        return self._chat.queued()

    def state(self) -> str:
        """`loaded`, `not_loaded`, or `failed:<error type>` (the last load attempt's)."""
        if self._chat.loaded:
            return "loaded"
        error = self._chat.load_error
        return f"failed:{error}" if error else "not_loaded"

    async def warmup(self) -> None:
        await self._result(self._chat, "", lambda model, job: None)

    async def generate(self, req: GenerationRequest, *, key: str = "") -> Generation:
        result: Generation = await self._result(
            self._chat, key, lambda model, job: self._generate(model, job, req))
        return result

    def stream(self, req: GenerationRequest, *,
               key: str = "") -> AsyncGenerator[tuple[str, Any], None]:
        """("start", prompt_tokens), then ("text", piece)..., then ("done", Generation)."""
        return self._events(self._chat, key, lambda model, job: self._generate(model, job, req))

    async def embed(self, texts: Sequence[str], *, key: str = "") -> tuple[list[list[float]], int]:
        result: tuple[list[list[float]], int] = await self._result(
            self._embedder, key, lambda model, job: self._embed(model, list(texts)))
        return result

    async def aclose(self) -> None:
        threads = [t for t in (self._chat.close(), self._embedder.close()) if t is not None]
        for t in threads:
            await asyncio.to_thread(t.join, 30.0)

    # --- event-loop side -------------------------------------------------------------------

    async def _events(self, worker: ModelWorker, key: str,
                      run: Callable[[Any, Job], Any]) -> AsyncGenerator[tuple[str, Any], None]:
        job = Job(key, run, asyncio.get_running_loop())
        worker.submit(job)
        try:
            while True:
                kind, value = await job.events.get()
                if kind == "error":
                    raise value
                yield kind, value
                if kind == "done":
                    return
        finally:
            job.cancelled = True
            worker.withdraw(job)

    async def _result(self, worker: ModelWorker, key: str,
                      run: Callable[[Any, Job], Any]) -> Any:
        async with aclosing(self._events(worker, key, run)) as events:
            async for kind, value in events:
                if kind == "done":
                    return value
        raise ProviderConnectionError("local model worker ended without a result",
                                      provider=PROVIDER, model=self.model.name)

    def _closed_error(self) -> Exception:
        return ProviderConnectionError("the local model engine is shut down",
                                       provider=PROVIDER, model=self.model.name)

    # --- worker-thread side ----------------------------------------------------------------

    def _llama_kwargs(self) -> dict[str, Any]:
        spec = self.model.spec
        return {"model_path": self.model.path, "n_threads": spec.n_threads,
                "n_threads_batch": spec.n_threads_batch, "verbose": False}

    def _load_chat(self) -> _ChatModel:
        lib = _import_llama_cpp(self.model)
        spec = self.model.spec
        try:
            llm = lib.Llama(n_ctx=spec.n_ctx, n_batch=spec.n_batch, **self._llama_kwargs())
        except Exception as exc:
            raise ConfigError(f"cannot load local model '{spec.name}' from "
                              f"{self.model.path!r}: {exc}") from None
        try:
            return _ChatModel(lib, llm, spec.chat_format)
        except BaseException:
            llm.close()
            raise

    def _load_embedder(self) -> Any:
        lib = _import_llama_cpp(self.model)
        spec = self.model.spec
        n = min(spec.n_ctx, _EMBED_BATCH_CAP)
        kwargs = {**self._llama_kwargs(), "embedding": True, "n_ctx": n, "n_batch": n,
                  "n_ubatch": n}
        try:
            emb = lib.Llama(**kwargs)
            if emb.pooling_type() == lib.LLAMA_POOLING_TYPE_NONE:
                # A chat model declares no pooling; mean pooling gives one vector per input.
                emb.close()
                emb = lib.Llama(pooling_type=lib.LLAMA_POOLING_TYPE_MEAN, **kwargs)
        except Exception as exc:
            raise ConfigError(f"cannot load local model '{spec.name}' for embeddings from "
                              f"{self.model.path!r}: {exc}") from None
        return emb

    def _generate(self, m: _ChatModel, job: Job, req: GenerationRequest) -> Generation:
        llm = m.llm
        try:
            formatted = m.format(messages=req.messages)
        except Exception as exc:  # templates raise on message orders they do not support
            raise InvalidRequestError(f"the model's chat template rejected the messages: {exc}",
                                      param="messages") from None
        ids: list[int] = llm.tokenize(formatted.prompt.encode("utf-8"),
                                      add_bos=not formatted.added_special, special=True)
        n_prompt = len(ids)
        room = m.n_ctx - n_prompt
        if room < 1:
            raise ContextLengthExceededError(
                f"This model's maximum context length is {m.n_ctx} tokens. However, your "
                f"messages resulted in {n_prompt} tokens. Please reduce the length of the "
                "messages.", provider=PROVIDER, model=self.model.name, param="messages")
        max_tokens = min(req.max_tokens or DEFAULT_MAX_TOKENS, room)
        grammar = m.grammars.get(req.schema) if req.schema is not None else None
        stops = tuple(s for s in (*req.stop, *_as_list(formatted.stop)) if s)
        cached = _common_prefix(llm, ids)
        s = req.sampling
        llm.set_seed(s.seed if s.seed is not None else random.getrandbits(32))
        job.emit("start", n_prompt)

        out = StopText(stops)
        count = 0
        finish = "length"
        tokens = llm.generate(
            ids, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p, temp=s.temperature,
            repeat_penalty=s.repeat_penalty, presence_penalty=s.presence_penalty,
            frequency_penalty=s.frequency_penalty, grammar=grammar,
            logits_processor=_bias_processor(m, s.logit_bias),
        )
        try:
            for tok in tokens:
                if job.stopped:
                    break
                if m.lib.llama_vocab_is_eog(m.vocab, tok):
                    finish = "stop"
                    break
                count += 1
                if out.add(llm.detokenize([tok])):
                    finish = "stop"
                    break
                if req.stream and (piece := out.ready()):
                    job.emit("text", piece)
                if count >= max_tokens:
                    break
        finally:
            tokens.close()
        if job.aborted:
            raise self._closed_error()
        if (rest := out.close()) and req.stream:
            job.emit("text", rest)
        matched = out.matched if out.matched in req.stop else None
        return Generation(out.text, n_prompt, count, cached, finish, matched)

    def _embed(self, emb: Any, texts: list[str]) -> tuple[list[list[float]], int]:
        limit: int = emb.n_batch
        for i, t in enumerate(texts):
            n = len(emb.tokenize(t.encode("utf-8")))
            if n > limit:
                raise ContextLengthExceededError(
                    f"input[{i}] has {n} tokens; this model embeds at most {limit}",
                    provider=PROVIDER, model=self.model.name, param="input")
        vectors, total = emb.embed(texts, normalize=True, return_count=True)
        return [list(map(float, v)) for v in vectors], int(total)


def _import_llama_cpp(model: LocalModel) -> Any:
    try:
        return import_llama_cpp()
    except ImportError:
        raise ConfigError(f"local model '{model.name}' needs llama-cpp-python: run "
                          "`pip install 'gatewise[local]'`") from None


def _close_model(model: Any) -> None:
    llm = model.llm if isinstance(model, _ChatModel) else model
    llm.close()


def _chat_formatter(lib: Any, llm: Any, override: str | None) -> Callable[..., Any]:
    """The GGUF's own chat template unless config names a llama-cpp format or gives a
    Jinja template; ChatML when the file carries no template."""
    formats = lib.llama_chat_format

    def token_text(tok: int) -> str:
        return str(llm._model.token_get_text(tok)) if tok != -1 else ""

    eos, bos = token_text(llm.token_eos()), token_text(llm.token_bos())
    chosen: Callable[..., Any] | None = None
    if override and ("{{" in override or "{%" in override):
        chosen = formats.Jinja2ChatFormatter(template=override, eos_token=eos, bos_token=bos)
    elif override:
        for name in (override.replace("-", "_"), override.replace("-", "")):
            fn = getattr(formats, f"format_{name}", None)
            if callable(fn):
                chosen = fn
                break
        else:
            raise ConfigError(f"unknown chat_format {override!r} (a llama-cpp-python format "
                              "name such as 'chatml', or a Jinja chat template)")
    elif template := llm.metadata.get("tokenizer.chat_template"):
        chosen = formats.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
    else:
        chosen = formats.format_chatml
    assert chosen is not None
    return chosen


def _bias_processor(m: _ChatModel, bias: Mapping[int, float] | None) -> Any:
    if not bias:
        return None
    np = m.numpy
    n_vocab = m.llm.n_vocab()
    pairs = [(k, v) for k, v in bias.items() if 0 <= k < n_vocab]
    if not pairs:
        return None
    ids = np.array([k for k, _ in pairs], dtype=np.intc)
    values = np.array([v for _, v in pairs], dtype=np.single)

    def apply(input_ids: Any, scores: Any) -> Any:
        # OpenAI's -100/100 mean ban/force; llama.cpp sees them as very large logit shifts.
        scores[ids] += values
        return scores

    return m.lib.LogitsProcessorList([apply])


def _common_prefix(llm: Any, ids: Sequence[int]) -> int:
    """Prompt tokens whose KV entries the previous request left behind (prefix reuse)."""
    try:
        n = min(int(llm.n_tokens), len(ids) - 1)
        previous = llm._input_ids
    except (AttributeError, TypeError):
        return 0
    i = 0
    while i < n and int(previous[i]) == ids[i]:
        i += 1
    return i


def _as_list(stop: Any) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [str(s) for s in stop]
