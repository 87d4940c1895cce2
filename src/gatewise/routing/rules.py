"""Routing rules: send requests that match metadata, headers or the requested alias elsewhere.

```yaml
router:
  rules:
    - {alias: premium, metadata: {tier: gold}}
    - {alias: eu, headers: {x-region: eu}}
    - {alias: local, models: [gpt], metadata: {sensitivity: high}}
```

The first rule whose every condition holds wins. Header names are compared case-insensitively
(the server hands over raw lower-cased names); values compare exactly, and `"*"` only asks that
the key or header be present. Rules are compiled once at start-up (names lower-cased and
encoded) so matching a request is a few dict lookups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gatewise.config.schema import RoutingRule

ANY = "*"


class CompiledRule:
    __slots__ = ("alias", "headers", "index", "metadata", "models")

    def __init__(self, rule: RoutingRule, index: int) -> None:
        self.index = index
        self.alias = rule.alias
        self.metadata: tuple[tuple[str, str], ...] = tuple((rule.metadata or {}).items())
        self.headers: tuple[tuple[bytes, bytes | None], ...] = tuple(
            (k.lower().encode("latin-1"), None if v == ANY else v.encode("latin-1"))
            for k, v in (rule.headers or {}).items())
        self.models: frozenset[str] | None = frozenset(rule.models) if rule.models else None

    def matches(self, model: str, metadata: Mapping[str, str] | None,
                headers: Mapping[bytes, bytes] | None) -> bool:
        if self.models is not None and model not in self.models:
            return False
        for key, want in self.metadata:
            got = metadata.get(key) if metadata else None
            if got is None or (want != ANY and got != want):
                return False
        for hname, hwant in self.headers:
            hgot = headers.get(hname) if headers else None
            if hgot is None or (hwant is not None and hgot != hwant):
                return False
        return True


class RuleSet:
    """The configured rules, in order."""

    def __init__(self, rules: Sequence[RoutingRule]) -> None:
        self.rules = [CompiledRule(r, i) for i, r in enumerate(rules)]
        self.uses_headers = any(r.headers for r in self.rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def match(self, model: str, metadata: Mapping[str, str] | None,
              raw_headers: Sequence[tuple[bytes, bytes]] = ()) -> CompiledRule | None:
        """The first rule that matches, or None."""
        headers = header_map(raw_headers) if self.uses_headers and raw_headers else None
        for rule in self.rules:
            if rule.matches(model, metadata, headers):
                return rule
        return None


def header_map(raw: Sequence[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Raw header pairs as a dict keyed by lower-cased name (the first value wins)."""
    out: dict[bytes, bytes] = {}
    for k, v in raw:
        k = k.lower()
        if k not in out:
            out[k] = v
    return out


def header_value(raw: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    """One header's value from raw pairs (`name` lower-case), decoded, or None."""
    for k, v in raw:
        if k == name or k.lower() == name:
            return v.decode("latin-1")
    return None
