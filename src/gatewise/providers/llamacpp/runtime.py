"""How llama.cpp shares the CPU with the gateway: thread counts and OpenMP's waiting policy.

llama-cpp-python's wheels are built with OpenMP, whose worker threads by default *spin* at the
barriers between a forward pass's operations. On a dedicated machine that is fastest. In a
gateway it is not dedicated: the event loop, the guardrail and ledger threads, another worker,
or any other process want a core too, and a spinning thread that loses its core holds every
other thread at the next barrier for a whole scheduler time slice. Measured on the project's
2-core reference VM with SmolLM2-135M and a 61-token prompt, one other busy process beside it, then
two (`bench/local_threads.py`, medians, worst round in brackets):

- all cores for generation and prompt (the old default): decoding 24.9 ms a token (80), then
  19.4 (395); prompts 582 ms (1,981), then 475 (1,605);
- one generation thread, both cores for the prompt, passive waiting (the default now):
  decoding 10.6 (13.7), then 9.9 (10.6); prompts 263 (381), then 270 (418);
- the same with spinning: prompts 1,178 ms (8,629), then 727 (5,071).

On the quiet machine the old default is faster: 7.3 ms a token and 145 ms a prompt against 7.8
and 181 (5-25 %), which a dedicated machine can have back (below).

So the defaults: generation (one token at a time, many short barriers) runs on all cores but
one, leaving a core to the gateway itself; the prompt (large matrix products, where threads
pay) runs on all cores; and OpenMP waits passively (`OMP_WAIT_POLICY=PASSIVE`) unless the
environment already says otherwise. A dedicated machine can set `OMP_WAIT_POLICY=ACTIVE` and
the `n_threads`/`n_threads_batch` of a local model in config.

The policy is read by libgomp once, when it is loaded with llama-cpp-python, so every import of
llama_cpp in gatewise goes through `import_llama_cpp`.

Logs: llama-cpp-python 0.3's own log callback maps ggml's levels by an older numbering (ggml now
counts DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5), so with `verbose=False` it still printed
llama.cpp's warnings as raw stderr lines, outside gatewise's log format: every start of the
offline default printed "llama_context: n_ctx_seq (512) > n_ctx_train (0) -- possible training
context overflow" (the token counter opens the model's vocabulary only, which has no training
context). `import_llama_cpp` routes them into the `gatewise.llamacpp` logger instead: llama.cpp's
errors as warnings, its warnings at DEBUG, its chatter (about 2,000 lines a model load) not at
all.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
from types import ModuleType
from typing import Any

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
DEFAULT_WAIT_POLICY = "PASSIVE"
_GGML_WARN, _GGML_ERROR = 3, 4
_CALLBACK_ATTR = "_gatewise_log_callback"  # kept on the module: ctypes must not free it
_log = logging.getLogger("gatewise.llamacpp")


def cpu_count() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads(cpus: int) -> int:
    """Generation threads: every core but one, which the gateway keeps for itself."""
    return max(1, cpus - 1)


def default_batch_threads(cpus: int) -> int:
    """Prompt threads: every core (prompt processing is where more threads pay)."""
    return max(1, cpus)


def import_llama_cpp() -> ModuleType:
    """`llama_cpp`, with OpenMP set to wait passively unless the environment chose already.

    Raises ImportError when llama-cpp-python is not installed."""
    # Not a setting gatewise reads: libgomp reads it, from the process environment, on load.
    os.environ.setdefault(WAIT_POLICY_ENV, DEFAULT_WAIT_POLICY)  # noqa: TID251
    lib = importlib.import_module("llama_cpp")
    if getattr(lib, _CALLBACK_ATTR, None) is None:
        callback = lib.llama_log_callback(_on_llama_log)
        lib.llama_log_set(callback, ctypes.c_void_p(0))
        setattr(lib, _CALLBACK_ATTR, callback)
    return lib


def _on_llama_log(level: int, text: bytes, user_data: Any) -> None:
    """llama.cpp's log line, on whichever thread logged it (ctypes holds the GIL here)."""
    if level == _GGML_ERROR:
        _log.warning("%s", text.decode("utf-8", "replace").rstrip())
    elif level == _GGML_WARN and _log.isEnabledFor(logging.DEBUG):
        _log.debug("%s", text.decode("utf-8", "replace").rstrip())
