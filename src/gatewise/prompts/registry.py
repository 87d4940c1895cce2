"""Where templates come from, and which version a request gets.

Two sources: the config (`prompts.templates`, and the YAML files of `prompts.dir`), and the
admin API (kept in the governance store with every version). A name lives in exactly one of
them: publishing a name the config defines is refused (409), so `support@2` can never mean
two different texts. Without a version a request gets the latest.

Stored templates are read through a short cache (`prompts.store_ttl_s`, default 5 s, misses
included), so the hot path does not ask the database on every request; a replica that did not
publish a new version sees it at most that long after. Every template is checked when it
enters (compiled, its response format and example set verified): a broken one is a config
error at load or a 400 from the admin API, never a surprise on a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from gatewise.config.schema import PromptExampleConfig, PromptTemplateConfig
from gatewise.errors import ConfigError, ConflictError, InvalidRequestError
from gatewise.prompts.engine import TemplateEngine
from gatewise.prompts.render import response_format_of
from gatewise.prompts.spec import (
    PromptNotFoundError,
    PromptRef,
    PromptSpec,
    template_sources,
    valid_name,
)
from gatewise.storage.prompts import PromptRecord, PromptStore


def check_template(engine: TemplateEngine, t: PromptTemplateConfig, *,
                   example_sets: Mapping[str, object]) -> None:
    """Raises `InvalidRequestError` (param: the field) for a template that cannot work."""
    for where, source in template_sources(t):
        engine.check(source, where=where)
    response_format_of(t.response_format, where="response_format")
    if t.examples is not None and t.examples.set not in example_sets:
        # The sets come from the config: a request cannot fix this, the configuration can.
        raise ConflictError(f"no example set '{t.examples.set}' in this gateway's config",
                            param="examples.set")
    for name in t.variables:
        if not valid_name(name) or not name.isidentifier():
            raise InvalidRequestError(f"'{name}' is not a variable name (a Python identifier)",
                                      param=f"variables.{name}")


def _versions(value: PromptTemplateConfig | list[PromptTemplateConfig]
              ) -> list[PromptTemplateConfig]:
    return value if isinstance(value, list) else [value]


def read_prompt_dir(path: Path) -> tuple[dict[str, list[PromptTemplateConfig]],
                                        dict[str, list[PromptExampleConfig]]]:
    """`*.yaml` / `*.yml` files, sorted: each either one template with a `name`, or a
    `templates:` / `example_sets:` mapping shaped like the config's."""
    templates: dict[str, list[PromptTemplateConfig]] = {}
    sets: dict[str, list[PromptExampleConfig]] = {}
    if not path.is_dir():
        raise ConfigError("not a directory", path="prompts.dir")
    for file in sorted([*path.glob("*.yaml"), *path.glob("*.yml")]):
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise ConfigError("a prompt file is a mapping", file=str(file))
            if "name" in data:
                name = str(data.pop("name"))
                templates.setdefault(name, []).append(msgspec.convert(data, PromptTemplateConfig))
                continue
            for name, value in (data.pop("templates", None) or {}).items():
                parsed = msgspec.convert(value, PromptTemplateConfig | list[PromptTemplateConfig])
                templates.setdefault(str(name), []).extend(_versions(parsed))
            for name, value in (data.pop("example_sets", None) or {}).items():
                sets[str(name)] = msgspec.convert(value, list[PromptExampleConfig])
            if data:
                raise ConfigError(f"unknown key '{next(iter(data))}'", file=str(file))
        except (msgspec.ValidationError, yaml.YAMLError) as exc:
            raise ConfigError(f"invalid prompt file: {exc}", file=str(file)) from None
    return templates, sets


class PromptRegistry:
    def __init__(self, templates: Mapping[str, list[PromptTemplateConfig]],
                 store: PromptStore | None, engine: TemplateEngine, *,
                 example_sets: Mapping[str, object], ttl_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.store = store
        self.example_sets = example_sets
        self.ttl_s = ttl_s
        self.clock = clock
        self._config: dict[str, dict[int, PromptSpec]] = {}
        for name, versions in templates.items():
            if not valid_name(name):
                raise ConfigError("a prompt name is letters, digits and `_.-`",
                                  path=f"prompts.templates.{name}")
            by_version: dict[int, PromptSpec] = {}
            for t in versions:
                if t.version in by_version:
                    raise ConfigError(f"version {t.version} is defined twice",
                                      path=f"prompts.templates.{name}")
                try:
                    check_template(engine, t, example_sets=example_sets)
                except InvalidRequestError as exc:
                    raise ConfigError(exc.message, path=f"prompts.templates.{name}") from None
                by_version[t.version] = PromptSpec(name, t.version, t, "config")
            self._config[name] = by_version
        self._cached: dict[tuple[str, int | None], tuple[float, PromptSpec | None]] = {}

    def in_config(self, name: str) -> bool:
        return name in self._config

    async def get(self, ref: PromptRef) -> PromptSpec:
        spec = await self.find(ref)
        if spec is None:
            raise PromptNotFoundError(f"no prompt '{ref}'", param="metadata.prompt")
        return spec

    async def find(self, ref: PromptRef) -> PromptSpec | None:
        versions = self._config.get(ref.name)
        if versions is not None:
            version = max(versions) if ref.version is None else ref.version
            return versions.get(version)
        if self.store is None:
            return None
        key = (ref.name, ref.version)
        now = self.clock()
        hit = self._cached.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        rec = await self.store.get_prompt(ref.name, ref.version)
        spec = None if rec is None else self.from_record(rec)
        if self.ttl_s > 0:
            if len(self._cached) > 10_000:
                self._cached.clear()
            self._cached[key] = (now + self.ttl_s, spec)
        return spec

    def from_record(self, rec: PromptRecord) -> PromptSpec:
        t = msgspec.convert({**rec.spec, "version": rec.version}, PromptTemplateConfig)
        return PromptSpec(rec.name, rec.version, t, "store")

    def _forget(self, name: str) -> None:
        for key in [k for k in self._cached if k[0] == name]:
            del self._cached[key]

    # -- what the admin API does ------------------------------------------------------------
    def parse(self, body: dict[str, Any]) -> PromptTemplateConfig:
        """An admin body's template, checked like a config one (400 naming the field)."""
        try:
            t = msgspec.convert(body, PromptTemplateConfig)
        except msgspec.ValidationError as exc:
            message, _, where = str(exc).partition(" - at `$")
            raise InvalidRequestError(message, param=where.lstrip(".").rstrip("`") or None
                                      ) from None
        check_template(self.engine, t, example_sets=self.example_sets)
        return t

    async def publish(self, name: str, template: PromptTemplateConfig, *, actor: str,
                      created: float) -> PromptSpec:
        if name in self._config:
            raise ConflictError(f"prompt '{name}' is defined in the config; change it there",
                                param="name")
        store = self._need_store()
        spec = msgspec.to_builtins(template)
        spec.pop("version", None)
        rec = await store.add_prompt(name, spec, created=created, actor=actor)
        self._forget(name)
        return self.from_record(rec)

    async def versions(self, name: str) -> list[PromptSpec]:
        if name in self._config:
            return [self._config[name][v] for v in sorted(self._config[name])]
        if self.store is None:
            return []
        return [self.from_record(r) for r in await self.store.prompt_versions(name)]

    async def latest(self) -> list[PromptSpec]:
        """The latest version of every template, config and stored, by name."""
        out = {name: vs[max(vs)] for name, vs in self._config.items()}
        if self.store is not None:
            for rec in await self.store.list_prompts():
                out.setdefault(rec.name, self.from_record(rec))
        return [out[n] for n in sorted(out)]

    async def delete(self, name: str, version: int | None) -> int:
        if name in self._config:
            raise ConflictError(f"prompt '{name}' is defined in the config; remove it there",
                                param="name")
        gone = await self._need_store().delete_prompt(name, version)
        self._forget(name)
        return gone

    def _need_store(self) -> PromptStore:
        if self.store is None:
            raise ConflictError("this gateway keeps no prompt store", code="not_configured")
        return self.store
