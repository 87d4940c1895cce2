"""Prompt templates kept by the admin API: every version of every name, never overwritten.

A template is a small JSON document (`PromptRecord.spec`, the config schema's
`PromptTemplateConfig` as plain data); versions count up from 1 per name, assigned by the store
inside one transaction so two replicas publishing at once never get the same number. Deleting
a name deletes all of its versions; deleting one version leaves the others (and the numbering:
a deleted version number is never reused, so `name@3` never silently means another text).

The SQL backends keep them beside the governance records (the same SQLite file, the same
PostgreSQL schema); `MemoryPrompts` is the embedded default for a memory database and tests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class PromptRecord:
    name: str
    version: int
    spec: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    actor: str = ""


class PromptStore(Protocol):
    async def add_prompt(self, name: str, spec: dict[str, Any], *, created: float,
                         actor: str) -> PromptRecord:
        """Stores `spec` as the next version of `name` (1 for a new name)."""
        ...

    async def get_prompt(self, name: str, version: int | None = None) -> PromptRecord | None:
        """One version, or the latest when `version` is None."""
        ...

    async def prompt_versions(self, name: str) -> list[PromptRecord]:
        """Every kept version of `name`, oldest first."""
        ...

    async def list_prompts(self) -> list[PromptRecord]:
        """The latest version of every name, by name."""
        ...

    async def delete_prompt(self, name: str, version: int | None = None) -> int:
        """Deletes one version (or all of them): how many were deleted."""
        ...

    async def aclose(self) -> None: ...


class MemoryPrompts:
    def __init__(self) -> None:
        self._by_name: dict[str, list[PromptRecord]] = {}
        self._next: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def add_prompt(self, name: str, spec: dict[str, Any], *, created: float,
                         actor: str) -> PromptRecord:
        async with self._lock:
            version = self._next.get(name, 1)
            self._next[name] = version + 1
            rec = PromptRecord(name, version, dict(spec), created, actor)
            self._by_name.setdefault(name, []).append(rec)
            return rec

    async def get_prompt(self, name: str, version: int | None = None) -> PromptRecord | None:
        versions = self._by_name.get(name) or []
        if version is None:
            return versions[-1] if versions else None
        return next((r for r in versions if r.version == version), None)

    async def prompt_versions(self, name: str) -> list[PromptRecord]:
        return list(self._by_name.get(name) or [])

    async def list_prompts(self) -> list[PromptRecord]:
        return [vs[-1] for _, vs in sorted(self._by_name.items()) if vs]

    async def delete_prompt(self, name: str, version: int | None = None) -> int:
        versions = self._by_name.get(name) or []
        kept = [] if version is None else [r for r in versions if r.version != version]
        gone = len(versions) - len(kept)
        if kept:
            self._by_name[name] = kept
        else:
            self._by_name.pop(name, None)
        return gone

    async def aclose(self) -> None:
        return None
