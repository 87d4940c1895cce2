"""Metadata filters for search (`storage.chunks.Filters`), checked once and compiled into a
predicate over a chunk's metadata.

Grammar: `{field: value}` (equality), or `{field: {"$in": [...]}}`, `{"$ne": v}`,
`{"$gte": v}`, `{"$lte": v}` (several operators on one field all apply). Every field must
match. A list-valued field (tags) equals a value when it contains it. A missing field
matches only `$ne`. Ranges compare numbers with numbers and strings with strings, so
`{"year": {"$gte": 2020}}` never matches a year stored as text. A malformed filter is the
caller's mistake: `InvalidRequestError` naming `filters`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gatewise.errors import InvalidRequestError
from gatewise.storage.chunks import Filters

Predicate = Callable[[Mapping[str, Any]], bool]
_OPERATORS = ("$in", "$ne", "$gte", "$lte")
_MISSING = object()


def _bad(message: str) -> InvalidRequestError:
    return InvalidRequestError(f"filters: {message}", param="filters")


def _equals(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list | tuple) and not isinstance(expected, list | tuple):
        return expected in actual
    return bool(actual == expected)


def _comparable(actual: Any, bound: Any) -> bool:
    number = (int, float)
    if isinstance(actual, bool) or isinstance(bound, bool):
        return False
    return (isinstance(actual, number) and isinstance(bound, number)) or (
        isinstance(actual, str) and isinstance(bound, str))


def _in(field: str, options: list[Any]) -> Predicate:
    def test(md: Mapping[str, Any]) -> bool:
        v = md.get(field, _MISSING)
        return v is not _MISSING and any(_equals(v, x) for x in options)

    return test


def _ne(field: str, value: Any) -> Predicate:
    def test(md: Mapping[str, Any]) -> bool:
        v = md.get(field, _MISSING)
        return v is _MISSING or not _equals(v, value)

    return test


def _range(field: str, bound: Any, *, lower: bool) -> Predicate:
    def test(md: Mapping[str, Any]) -> bool:
        v = md.get(field)
        return _comparable(v, bound) and (v >= bound if lower else v <= bound)

    return test


def _eq(field: str, value: Any) -> Predicate:
    def test(md: Mapping[str, Any]) -> bool:
        v = md.get(field, _MISSING)
        return v is not _MISSING and _equals(v, value)

    return test


def _clause(field: str, condition: Any) -> Predicate:
    if not isinstance(condition, Mapping) or not any(
            isinstance(k, str) and k.startswith("$") for k in condition):
        return _eq(field, condition)
    tests: list[Predicate] = []
    for op, arg in condition.items():
        if op not in _OPERATORS:
            raise _bad(f"unknown operator {op!r} on {field!r} (use {', '.join(_OPERATORS)})")
        if op == "$in":
            if not isinstance(arg, list | tuple):
                raise _bad(f"'$in' on {field!r} takes a list")
            tests.append(_in(field, list(arg)))
        elif op == "$ne":
            tests.append(_ne(field, arg))
        else:
            if isinstance(arg, bool) or not isinstance(arg, int | float | str):
                raise _bad(f"{op!r} on {field!r} takes a number or a string")
            tests.append(_range(field, arg, lower=op == "$gte"))
    if len(tests) == 1:
        return tests[0]
    return lambda md: all(t(md) for t in tests)


def compile_filters(filters: Filters | None) -> Predicate | None:
    """A predicate for `filters` (None: no filter), after checking their shape."""
    if not filters:
        return None
    if not isinstance(filters, Mapping):
        raise _bad("expected an object of field → condition")
    clauses = []
    for field, condition in filters.items():
        if not isinstance(field, str) or not field or field.startswith("$"):
            raise _bad(f"invalid field name {field!r}")
        clauses.append(_clause(field, condition))
    if len(clauses) == 1:
        return clauses[0]
    return lambda md: all(c(md) for c in clauses)


class KeyFilter:
    """A predicate bound to an index's chunks (key → chunk): `passes(key)` tests one chunk,
    for a search that over-fetches and filters; `keys()` lists every live passing key, for
    the exact fallback when too few pass the over-fetch. `known`: the passing keys the index
    remembered for the same filters (it may still list removed chunks; they are skipped);
    without it, `keys()` scans every chunk once and hands the result to `remember`."""

    def __init__(self, chunks: Mapping[int, Any], predicate: Predicate, *,
                 known: list[int] | None = None,
                 remember: Callable[[list[int]], None] | None = None) -> None:
        self._chunks = chunks
        self._predicate = predicate
        self._known = known
        self._remember = remember
        self._keys: Any = None

    def passes(self, key: int) -> bool:
        return self._predicate(self._chunks[key].metadata)

    def keys(self) -> Any:
        """The live passing keys, ascending, as an int64 array."""
        if self._keys is None:
            import numpy as np

            chunks = self._chunks
            if self._known is not None:
                found = [k for k in self._known if k in chunks]
            else:
                test = self._predicate
                found = [k for k, c in chunks.items() if test(c.metadata)]
                if self._remember is not None:
                    self._remember(found)
            self._keys = np.sort(np.asarray(found, dtype=np.int64))
        return self._keys
