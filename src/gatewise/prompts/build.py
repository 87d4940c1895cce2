"""Config → prompts: the template engine, the registry (config, prompt files, the admin API's
store), few-shot example sets with their embedder, the model-format table, and the two
middlewares. Built once per gateway; nothing here renders, embeds or reads the store until a
request or an admin call needs it.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewise.accounting.tokenizers import CL100K, Tokenizers
from gatewise.config.schema import PromptExampleConfig, PromptsConfig, PromptTemplateConfig
from gatewise.errors import ConfigError, InvalidRequestError
from gatewise.prompts.engine import TemplateEngine
from gatewise.prompts.fewshot import FewShotSelector, examples_from
from gatewise.prompts.formats import FormatTable
from gatewise.prompts.middleware import (
    PromptFormatMiddleware,
    PromptMiddleware,
    parse_variables,
)
from gatewise.prompts.registry import PromptRegistry, read_prompt_dir
from gatewise.prompts.render import RenderedPrompt
from gatewise.prompts.spec import PromptRef, PromptSpec, parse_ref
from gatewise.providers.deployment import Deployment
from gatewise.providers.presets import LOCAL_MODEL_WIRES
from gatewise.storage.prompts import PromptStore
from gatewise.types.requests import ChatRequest

if TYPE_CHECKING:
    from gatewise.embedding.base import AsyncEmbedder


def _local_embedder_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None
               for m in ("numpy", "onnxruntime", "tokenizers"))


def default_embedder(choice: str) -> AsyncEmbedder | None:
    """`none`: the sets' own order; `local`: the local MiniLM model (`gatewise.embedding`);
    `auto`: the local model when its extra (`semantic`) is installed."""
    if choice == "none" or (choice == "auto" and not _local_embedder_installed()):
        return None
    from gatewise.embedding import local_embedder

    return local_embedder()


def _check_aliases(aliases: Mapping[str, str],
                   templates: Mapping[str, list[PromptTemplateConfig]]) -> None:
    """Each bound reference is well formed, and a pinned version of a config template exists
    (a name the config does not define may still be published through the admin API)."""
    for alias, ref in aliases.items():
        where = f"prompts.aliases.{alias}"
        try:
            parsed = parse_ref(ref, param=where)
        except InvalidRequestError as exc:
            raise ConfigError(exc.message, path=where) from None
        versions = templates.get(parsed.name)
        if versions is not None and parsed.version is not None \
                and all(t.version != parsed.version for t in versions):
            raise ConfigError(f"prompt '{parsed.name}' has no version {parsed.version}",
                              path=where)


class Prompts:
    """One gateway's prompt machinery (`Gateway.prompts`)."""

    def __init__(self, cfg: PromptsConfig, store: PromptStore | None, tokenizers: Tokenizers,
                 aliases: Mapping[str, list[Deployment]], *, config_file: str | None = None,
                 embedder: AsyncEmbedder | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        templates: dict[str, list[PromptTemplateConfig]] = {
            name: value if isinstance(value, list) else [value]
            for name, value in cfg.templates.items()}
        sets: dict[str, list[PromptExampleConfig]] = dict(cfg.example_sets)
        if cfg.dir:
            folder = Path(cfg.dir).expanduser()
            if not folder.is_absolute() and config_file:
                folder = Path(config_file).parent / folder
            more, more_sets = read_prompt_dir(folder)
            for name, versions in more.items():
                templates.setdefault(name, []).extend(versions)
            sets.update(more_sets)
        _check_aliases(cfg.aliases, templates)
        self.engine = TemplateEngine()
        example_sets = {name: examples_from(v) for name, v in sets.items()}
        self.registry = PromptRegistry(templates, store, self.engine,
                                       example_sets=example_sets, ttl_s=cfg.store_ttl_s,
                                       clock=clock)
        if embedder is None and example_sets:
            embedder = default_embedder(cfg.embedder)
        self.selector = FewShotSelector(example_sets, embedder)
        self.formats = FormatTable(cfg.formats)
        self._tokenizers = tokenizers
        self._aliases = aliases
        self.middleware = PromptMiddleware(self.registry, self.engine, self.selector,
                                           aliases=cfg.aliases, counter=self.counter)
        self.per_attempt = PromptFormatMiddleware(self.formats)

    def counter(self, alias: str) -> Callable[[str], int]:
        """Counts tokens as the alias's first deployment does (cl100k for an in-process
        model, whose vocabulary opens off the event loop, and for an unknown alias)."""
        deps = self._aliases.get(alias) or []
        target = deps[0].target if deps else None
        if target is None or target.wire in LOCAL_MODEL_WIRES:
            return self._tokenizers.encoding(CL100K).count
        counter = self._tokenizers.for_target(target)
        return counter.count

    async def prepare(self, req: ChatRequest) -> ChatRequest:
        """`req` as the pipeline would send it when it names a template (token estimates
        use this); unchanged otherwise."""
        mw = self.middleware
        md = req.metadata or {}
        ref = md.get("prompt") or mw.aliases.get(req.model)
        if ref is None:
            return req
        out, _ = await mw.prepare(req, ref, parse_variables(md.get("prompt_variables")),
                                  alias=req.model)
        return out

    async def render(self, ref: str, variables: dict[str, Any] | None = None, *,
                     messages: list[Any] | None = None) -> RenderedPrompt:
        """A template rendered on its own (the library's `gw.render_prompt`)."""
        from gatewise.types.validation import chat_request_from_dict

        req = chat_request_from_dict({"model": "-", "messages": messages or [
            {"role": "user", "content": ""}]})
        return await self.middleware.render(req, ref, variables, alias="-")

    async def get(self, name: str, version: int | None = None) -> PromptSpec | None:
        return await self.registry.find(PromptRef(name, version))

    async def warm(self) -> None:
        """The few-shot sets' vectors (loading the embedding model), off the first request."""
        await self.selector.warm()

    async def aclose(self) -> None:
        embedder = self.selector.embedder
        if embedder is not None:
            await embedder.aclose()
