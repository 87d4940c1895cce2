"""What the exact cache may store and for how long, from `cache:` in the config and the
request's own controls.

- Never errors (they are exceptions and never reach the cache), never sampled answers
  (temperature above 0, or unset, without a seed) unless the alias opts in
  (`cache_nondeterministic`), never answers that call tools unless it opts in (`cache_tools`),
  never answers cut by a content filter.
- PII: the cache sits inside the guardrails, so it keys on the masked request and stores what
  the upstream answered to it (placeholders, never raw values); unmasking happens outside, per
  caller, on a hit as on a miss.
- TTL: the request's own (`x-gatewise-cache-ttl`, or `cache={"ttl_s": ...}`), else
  `request_type_ttl[metadata.request_type]`, else the alias's `ttl_s`, else `default_ttl_s`.
- Request controls (`x-gatewise-cache`, or `cache={"mode": ...}`): `no-store` (may be served
  from the cache; the answer is not stored), `no-cache` (not served from the cache; the fresh
  answer is stored), `only-if-cached` (a miss is a 504 `cache_miss`, the upstream is not asked).
- Tags, for invalidation (`x-gatewise-cache-tags: a,b`, `metadata.cache_tags`, or
  `cache={"tags": [...]}`), and an eviction priority (`metadata.cache_priority` or
  `cache={"priority": ...}`: low | normal | high, else the alias's): a bad one is a 400, so a
  typo never silently stores an entry nobody can invalidate.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gatewise.config.schema import CacheConfig
from gatewise.errors import InvalidRequestError
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion

Mode = Literal["default", "no-store", "no-cache", "only-if-cached"]
MODES: frozenset[str] = frozenset(("default", "no-store", "no-cache", "only-if-cached"))
MODE_HEADER = b"x-gatewise-cache"
TTL_HEADER = b"x-gatewise-cache-ttl"
TAGS_HEADER = b"x-gatewise-cache-tags"
PRIORITY_NAMES: frozenset[str] = frozenset(("low", "normal", "high"))
MAX_TAGS = 16
TAG_PATTERN = re.compile(r"^\w[\w.:@+-]{0,127}\Z")
_STORED_FINISH = frozenset(("stop", "length", "tool_calls", "function_call"))


@dataclass(frozen=True, slots=True)
class AliasPolicy:
    enabled: bool
    ttl_s: float
    global_scope: bool
    cache_tools: bool
    cache_nondeterministic: bool
    priority: str = "normal"


@dataclass(frozen=True, slots=True)
class CacheControl:
    mode: Mode = "default"
    ttl_s: float | None = None
    tags: tuple[str, ...] = ()
    priority: str | None = None


def parse_tags(value: Any, param: str) -> tuple[str, ...]:
    """Tags from a list, or from a comma-separated string (a header, a metadata value, which
    OpenAI allows only as strings; a JSON array string is read too)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise InvalidRequestError(f"{param} is not a JSON array of tags",
                                          param=param) from None
        else:
            value = [t.strip() for t in text.split(",") if t.strip()]
    if not isinstance(value, list | tuple):
        raise InvalidRequestError(f"{param} must be a list of tags", param=param)
    if len(value) > MAX_TAGS:
        raise InvalidRequestError(f"{param}: at most {MAX_TAGS} tags", param=param)
    for tag in value:
        if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
            raise InvalidRequestError(
                f"{param}: a tag is 1 to 128 letters, digits or _ . : @ + - (starting with "
                "a letter, digit or _)", param=param)
    return tuple(dict.fromkeys(value))


def parse_priority(value: Any, param: str) -> str:
    if value not in PRIORITY_NAMES:
        raise InvalidRequestError(f"{param} must be one of low, normal, high", param=param)
    return str(value)


DEFAULT_CONTROL = CacheControl()


def _ttl(value: Any, param: str) -> float:
    try:
        ttl = float(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{param} must be a number of seconds", param=param) from None
    if not math.isfinite(ttl) or ttl <= 0:
        raise InvalidRequestError(f"{param} must be a positive number of seconds", param=param)
    return ttl


def control_from_headers(headers: Sequence[tuple[bytes, bytes]]) -> CacheControl:
    mode: str = "default"
    ttl: float | None = None
    tags: tuple[str, ...] = ()
    for name, value in headers:
        if name == TAGS_HEADER:
            tags = parse_tags(value.decode("latin-1"), "x-gatewise-cache-tags")
        elif name == MODE_HEADER:
            mode = value.decode("latin-1").strip().lower()
            if mode not in MODES:
                raise InvalidRequestError(
                    "x-gatewise-cache must be one of no-store, no-cache, only-if-cached",
                    param="x-gatewise-cache")
        elif name == TTL_HEADER:
            ttl = _ttl(value.decode("latin-1").strip(), "x-gatewise-cache-ttl")
    if mode == "default" and ttl is None and not tags:
        return DEFAULT_CONTROL
    return CacheControl(mode, ttl, tags)  # type: ignore[arg-type]


def control_from_options(options: Mapping[str, Any]) -> CacheControl:
    """The library's `cache={"mode": "no-store" | "no-cache" | "only-if-cached", "ttl_s": 60,
    "tags": [...], "priority": "low" | "normal" | "high"}`."""
    unknown = set(options) - {"mode", "ttl_s", "tags", "priority"}
    if unknown:
        raise InvalidRequestError(f"unknown cache option(s): {', '.join(sorted(unknown))}",
                                  param="cache")
    mode = options.get("mode") or "default"
    if mode not in MODES:
        raise InvalidRequestError("cache mode must be one of no-store, no-cache, only-if-cached",
                                  param="cache.mode")
    ttl = options.get("ttl_s")
    tags = parse_tags(options["tags"], "cache.tags") if "tags" in options else ()
    priority = options.get("priority")
    return CacheControl(mode, None if ttl is None else _ttl(ttl, "cache.ttl_s"),  # type: ignore[arg-type]
                        tags, None if priority is None else parse_priority(priority,
                                                                            "cache.priority"))


class CachePolicy:
    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self.default = AliasPolicy(config.enabled, config.default_ttl_s,
                                   config.scope == "global", config.cache_tools,
                                   config.cache_nondeterministic, config.priority)
        self._aliases: dict[str, AliasPolicy] = {}
        for alias, o in config.aliases.items():
            d = self.default
            self._aliases[alias] = AliasPolicy(
                d.enabled if o.enabled is None else o.enabled,
                d.ttl_s if o.ttl_s is None else o.ttl_s,
                d.global_scope if o.scope is None else o.scope == "global",
                d.cache_tools if o.cache_tools is None else o.cache_tools,
                d.cache_nondeterministic if o.cache_nondeterministic is None
                else o.cache_nondeterministic,
                d.priority if o.priority is None else o.priority)
        self._request_types = config.request_type_ttl

    @property
    def any_enabled(self) -> bool:
        return self.default.enabled or any(p.enabled for p in self._aliases.values())

    def for_alias(self, alias: str) -> AliasPolicy:
        return self._aliases.get(alias, self.default)

    def ttl(self, policy: AliasPolicy, req: ChatRequest, control: CacheControl) -> float:
        if control.ttl_s is not None:
            return control.ttl_s
        md = req.metadata
        if md and self._request_types:
            kind = md.get("request_type")
            if kind is not None and kind in self._request_types:
                return self._request_types[kind]
        return policy.ttl_s

    @staticmethod
    def entry_options(policy: AliasPolicy, req: ChatRequest, control: CacheControl
                      ) -> tuple[tuple[str, ...], str]:
        """The tags and eviction priority a stored answer gets: the request's controls and
        its metadata's `cache_tags` / `cache_priority`, else the alias's priority."""
        tags, priority = control.tags, control.priority
        md = req.metadata
        if md:
            if "cache_tags" in md:
                tags = tuple(dict.fromkeys(
                    (*tags, *parse_tags(md["cache_tags"], "metadata.cache_tags"))))
                if len(tags) > MAX_TAGS:
                    raise InvalidRequestError(f"at most {MAX_TAGS} cache tags", param="metadata")
            if priority is None and "cache_priority" in md:
                priority = parse_priority(md["cache_priority"], "metadata.cache_priority")
        return tags, priority or policy.priority

    @staticmethod
    def request_bypass(policy: AliasPolicy, req: ChatRequest) -> str | None:
        """Why this request is never cached (None: it may be)."""
        if not policy.cache_nondeterministic and req.seed is None \
                and (req.temperature is None or req.temperature > 0):
            return "nondeterministic"
        return None

    @staticmethod
    def answer_bypass(policy: AliasPolicy, completion: ChatCompletion) -> str | None:
        """Why this answer is not stored (None: it may be)."""
        if not completion.choices:
            return "empty"
        for ch in completion.choices:
            if ch.finish_reason not in _STORED_FINISH:
                return "finish_reason"
            if ch.message.tool_calls and not policy.cache_tools:
                return "tool_calls"
        return None
