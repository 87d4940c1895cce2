"""The built-in prompt `title`, and the cache preset for the title model.

`title` is an ordinary prompt template (`gatewise.prompts`): the gateway registers it as if the
config had declared it, unless the config (or its prompts directory) declares its own `title`,
which then wins. So it is also reachable without `/v1/titles`: a chat completion with
`metadata.prompt = "title"` and `metadata.prompt_variables = {"style": …, "max_length": …}`
and the description as the user message gets the same prompt (the title is then not
post-processed: that is `/v1/titles`'s job).

The description is the request's user message, never a template variable: the semantic cache
compares the last user turn by meaning and everything else exactly (`cache/semantic.py`), so
two similar descriptions with the same style, length, category and examples can share an
answer, while a different style never does. The caller's example titles are few-shot guidance
rendered into the instructions (they come without descriptions, so they cannot be turns).

Cache preset (`titles.cache`, default on): when `titles.model` names an alias of its own, that
alias gets the response cache with the semantic side and sampled answers allowed (a title is
generated at a non-zero temperature, so Regenerate, which skips the cache with `no-cache`,
gets a fresh one that then replaces the stored answer), unless `cache.aliases` configures the
alias itself. Without a dedicated alias nothing is switched on: the default alias also serves
chat, whose caching the operator decides.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection
from pathlib import Path

import msgspec

from gatewise.config.schema import (
    CacheAliasConfig,
    CacheConfig,
    PromptMessageConfig,
    PromptsConfig,
    PromptTemplateConfig,
    PromptVariableConfig,
)
from gatewise.errors import ConfigError
from gatewise.prompts.registry import read_prompt_dir

PROMPT_NAME = "title"

INSTRUCTIONS = """\
{%- set hints = {"feature": "new capability for users",
                 "bug": "something broken to fix; name the symptom",
                 "improvement": "make an existing capability better",
                 "task": "a piece of work to get done",
                 "research": "a question to investigate",
                 "infrastructure": "platform, tooling or operations work"} -%}
Write one title for the epic the user describes.
{% if style == "detailed" -%}
Style: detailed. Say what changes, for whom, and the main outcome or constraint.
{%- else -%}
Style: concise. A short imperative phrase naming the capability (a verb first).
{%- endif %}
{% if category %}Category: {{ category }} ({{ hints.get(category, "as the team uses it") }}).
{% endif -%}
The title is at most {{ max_length }} characters long. Answer with the title only: one line, \
no quotes, no label, no trailing period.
{%- if examples %}

Titles this team considers good (match their tone and shape):
{% for example in examples %}- {{ example }}
{% endfor %}{% endif %}"""

# One worked example in the requested style, as a user/assistant pair before the request:
# small models copy the shape of an answer far better than they follow a described one.
SHOT_DESCRIPTION = ("Users who forget their password have to e-mail support and wait a day "
                    "to get back into their account.")
SHOT_TITLE = ("{% if style == 'detailed' %}Add self-service password reset so locked-out "
              "users regain access without contacting support{% else %}Add self-service "
              "password reset{% endif %}")

TITLE_TEMPLATE = PromptTemplateConfig(
    description="Epic title generator (`/v1/titles`): the user message is the description",
    role="an editor who writes clear, specific titles for product epics",
    instructions=INSTRUCTIONS,
    messages=[PromptMessageConfig(role="user", content=SHOT_DESCRIPTION),
              PromptMessageConfig(role="assistant", content=SHOT_TITLE)],
    variables={
        "style": PromptVariableConfig(type="string", required=False, default="concise"),
        "max_length": PromptVariableConfig(type="integer", required=False, default=80),
        "category": PromptVariableConfig(type="string", required=False),
        "examples": PromptVariableConfig(type="array", required=False),
    },
)


def with_title_prompt(cfg: PromptsConfig, *, config_file: str | None = None) -> PromptsConfig:
    """`cfg` with the built-in `title` template, unless it declares a `title` itself, in
    `prompts.templates` or in a file of `prompts.dir` (read again by `Prompts`, which also
    reports a broken one)."""
    if PROMPT_NAME in cfg.templates:
        return cfg
    if cfg.dir:
        folder = Path(cfg.dir).expanduser()
        if not folder.is_absolute() and config_file:
            folder = Path(config_file).parent / folder
        try:
            declared, _ = read_prompt_dir(folder)
        except ConfigError:
            return cfg
        if PROMPT_NAME in declared:
            return cfg
    return msgspec.structs.replace(cfg, templates={**cfg.templates,
                                                   PROMPT_NAME: TITLE_TEMPLATE})


def _semantic_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None
               for m in ("numpy", "onnxruntime", "tokenizers"))


def with_title_cache(cfg: CacheConfig, model: str | None, *, enabled: bool) -> CacheConfig:
    """`cfg` with the title alias's cache switched on (see the module docstring). The semantic
    side needs the local embedder (the `semantic` extra) unless `cache.semantic.embedder`
    names an embedding alias; without it the preset stays exact-only."""
    if not enabled or model is None or model in cfg.aliases:
        return cfg
    semantic = cfg.semantic.embedder != "local" or _semantic_installed()
    preset = CacheAliasConfig(enabled=True, cache_nondeterministic=True,
                              semantic=True if semantic else None)
    return msgspec.structs.replace(cfg, aliases={**cfg.aliases, model: preset})


def check_title_model(model: str | None, aliases: Collection[str]) -> None:
    """`titles.model` names an alias (or an orchestration) of this config, or a `provider/
    model` or `assistant/<name>` the router resolves on its own: a typo is a config error at
    load, not a 404 on every title."""
    if model is not None and model not in aliases and "/" not in model:
        raise ConfigError(f"'{model}' is not a model alias of this config", path="titles.model")
