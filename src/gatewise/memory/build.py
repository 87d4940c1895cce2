"""`build_memory`: conversation memory and assistants from the config, on the stores the
gateway opened. The summary model defaults to the embedded local model's alias (`local`),
else the gateway's default model; with neither, long histories are sent whole (and an
upstream context error says so) rather than summarised."""

from __future__ import annotations

from collections.abc import Callable

from gatewise.accounting.usage import Prices, TokenCounting
from gatewise.config.loader import ResolvedConfig
from gatewise.memory.assistants import AssistantMiddleware
from gatewise.memory.middleware import MemoryMiddleware
from gatewise.memory.service import ConversationMemory, Forget, Restore
from gatewise.memory.summary import Summariser
from gatewise.memory.window import ContextWindows
from gatewise.pipeline.runner import Runner
from gatewise.providers.deployment import Deployment
from gatewise.storage.base import ConversationStore

LOCAL_ALIAS = "local"


def summary_model(config: ResolvedConfig) -> str | None:
    chosen = config.config.memory.summary_model
    if chosen:
        return chosen
    return LOCAL_ALIAS if LOCAL_ALIAS in config.aliases else config.default_model


def build_memory(config: ResolvedConfig, store: ConversationStore, *, prices: Prices,
                 tokenizers: TokenCounting, runner: Runner, forget: Forget | None,
                 restore: Restore | None = None,
                 reported_window: Callable[[Deployment], int | None] | None = None,
                 ) -> ConversationMemory:
    """`reported_window`: a deployment's context window as its provider reports it (the
    router's capability index), for models the price table does not know."""
    mc = config.config.memory
    windows = ContextWindows(config.aliases, config.direct, prices, tokenizers,
                             fallback_window=mc.fallback_window,
                             reserve_output=mc.reserve_output, reported=reported_window)
    model = summary_model(config)
    summariser = (Summariser(runner, model, max_tokens=mc.summary_max_tokens)
                  if model else None)
    return ConversationMemory(store, windows, summariser=summariser, ttl_s=mc.ttl_s,
                              forget=forget, restore=restore)


def build_middlewares(config: ResolvedConfig,
                      memory: ConversationMemory) -> tuple[AssistantMiddleware | None,
                                                           MemoryMiddleware | None]:
    """(assistants, memory): each None when the config does not use it."""
    assistants = (AssistantMiddleware(config.config.assistants, config.default_model)
                  if config.config.assistants else None)
    return assistants, (MemoryMiddleware(memory) if config.config.memory.enabled else None)
