"""A tool's JSON schema derived from a Python function's signature, so the schema the model
sees and the function that runs can never drift apart.

Supported: str, int, float, bool, None, Any, Literal, Enum, list/tuple/set/Sequence of X,
dict / dict[str, X], X | None (Optional), defaults (not required), `Annotated[X, "what it
is"]` for descriptions, and pydantic models (a lone model parameter becomes the whole
argument object; a model among other parameters is nested). Derived object schemas forbid
extra properties (`additionalProperties: false`), so a model cannot smuggle in arguments the
function does not declare. A parameter annotated `Identity` is not an argument: the caller's
identity is passed there when the tool runs.

pydantic is never imported here: a model class is recognised by its `model_json_schema`.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from gatewise.pipeline.core import Identity

_ARG_LINE = re.compile(r"^\s{0,8}(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


@dataclass(slots=True)
class Derived:
    """What registration needs from a function: its description and parameter schema, and how
    to turn validated JSON arguments back into the Python values it expects."""

    description: str
    parameters: dict[str, Any]
    identity_param: str | None = None
    # A lone pydantic model parameter: (parameter name, model class).
    model_param: tuple[str, Any] | None = None
    # Per-parameter converters from JSON values (Enum members, nested pydantic models).
    converters: dict[str, Callable[[Any], Any]] = field(default_factory=dict)


def is_pydantic_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_json_schema") and hasattr(tp, "model_validate")


def derive(fn: Callable[..., Any]) -> Derived:
    """The description and JSON schema for `fn`; TypeError names a parameter it cannot map."""
    name = getattr(fn, "__name__", "tool")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise TypeError(f"tool {name}: cannot read its type hints ({exc})") from None
    doc = inspect.getdoc(fn) or ""
    summary, arg_docs = _parse_doc(doc)
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values()]
    out = Derived(description=summary, parameters={})
    candidates: list[inspect.Parameter] = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"tool {name}: *args/**kwargs cannot be described to a model ({p.name})")
        tp = hints.get(p.name, Any)
        if _strip_annotated(tp)[0] is Identity:
            out.identity_param = p.name
            continue
        candidates.append(p)
    if len(candidates) == 1 and is_pydantic_model(_strip_annotated(hints.get(candidates[0].name))[0]):
        model = _strip_annotated(hints[candidates[0].name])[0]
        schema: dict[str, Any] = dict(model.model_json_schema())
        schema.pop("title", None)
        _forbid_extra(schema)
        if not out.description and schema.get("description"):
            out.description = str(schema["description"])
        out.parameters = schema
        out.model_param = (candidates[0].name, model)
        return out
    defs: dict[str, Any] = {}
    props: dict[str, Any] = {}
    required: list[str] = []
    for p in candidates:
        tp = hints.get(p.name, Any)
        try:
            prop = _schema_for(tp, defs, out.converters, p.name)
        except TypeError as exc:
            raise TypeError(f"tool {name}: parameter '{p.name}': {exc}") from None
        if "description" not in prop and p.name in arg_docs:
            prop["description"] = arg_docs[p.name]
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        elif _jsonable(p.default):
            prop["default"] = p.default.value if isinstance(p.default, enum.Enum) else p.default
        props[p.name] = prop
    schema = {"type": "object", "properties": props, "required": required,
                              "additionalProperties": False}
    if defs:
        schema["$defs"] = defs
    out.parameters = schema
    return out


def _strip_annotated(tp: Any) -> tuple[Any, str | None]:
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        desc = next((m for m in meta if isinstance(m, str)), None)
        if desc is None:
            desc = next((getattr(m, "description", None) for m in meta
                         if isinstance(getattr(m, "description", None), str)), None)
        return base, desc
    return tp, None


def _schema_for(tp: Any, defs: dict[str, Any], converters: dict[str, Callable[[Any], Any]],
                pname: str | None) -> dict[str, Any]:
    tp, desc = _strip_annotated(tp)
    schema = _base_schema(tp, defs, converters, pname)
    if desc:
        schema["description"] = desc
    return schema


_PRIMITIVES: Mapping[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                                  type(None): "null", None: "null"}


def _base_schema(tp: Any, defs: dict[str, Any], converters: dict[str, Callable[[Any], Any]],
                 pname: str | None) -> dict[str, Any]:
    if tp is Any or tp is object:
        return {}
    prim = _PRIMITIVES.get(tp)
    if prim is not None:
        return {"type": prim}
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Literal:
        values = list(args)
        kinds = {_PRIMITIVES.get(type(v)) for v in values}
        out: dict[str, Any] = {"enum": values}
        if len(kinds) == 1 and None not in kinds:
            out["type"] = kinds.pop()
        return out
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        if pname is not None:
            converters[pname] = tp
        kinds = {_PRIMITIVES.get(type(v)) for v in values}
        out = {"enum": values}
        if len(kinds) == 1 and None not in kinds:
            out["type"] = kinds.pop()
        return out
    if origin in (Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        subs = [_schema_for(a, defs, converters, pname if len(non_null) == 1 else None)
                for a in non_null]
        if len(non_null) < len(args):
            subs.append({"type": "null"})
        return subs[0] if len(subs) == 1 else {"anyOf": subs}
    if origin in (list, Sequence, set, frozenset, tuple) or tp in (list, set, frozenset, tuple):
        if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            raise TypeError("fixed-length tuples are not supported; use list[...]")
        item = _schema_for(args[0], defs, converters, None) if args else {}
        out = {"type": "array", "items": item}
        if origin in (set, frozenset) or tp in (set, frozenset):
            out["uniqueItems"] = True
        return out
    if origin in (dict, Mapping) or tp is dict:
        if args and args[0] is not str:
            raise TypeError("dict keys must be str (JSON object keys are strings)")
        return {"type": "object", "additionalProperties": (
            _schema_for(args[1], defs, converters, None) if len(args) == 2 else True)}
    if is_pydantic_model(tp):
        schema = dict(tp.model_json_schema(ref_template="#/$defs/{model}"))
        schema.pop("title", None)
        defs.update(schema.pop("$defs", {}))
        _forbid_extra(schema)
        for d in defs.values():
            _forbid_extra(d)
        if pname is not None:
            converters[pname] = tp.model_validate
        return schema
    raise TypeError(f"type {tp!r} cannot be described as JSON schema")


def _forbid_extra(schema: dict[str, Any]) -> None:
    """Object schemas with declared properties forbid others unless they say otherwise."""
    if schema.get("type") == "object" and "properties" in schema:
        schema.setdefault("additionalProperties", False)
    for d in (schema.get("$defs") or {}).values():
        if isinstance(d, dict):
            _forbid_extra(d)


def _jsonable(v: Any) -> bool:
    if isinstance(v, enum.Enum):
        v = v.value
    if v is None or isinstance(v, str | int | float | bool):
        return True
    if isinstance(v, list | tuple):
        return all(_jsonable(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _jsonable(x) for k, x in v.items())
    return False


def _parse_doc(doc: str) -> tuple[str, dict[str, str]]:
    """The docstring's text before an `Args:` section, and that section's per-argument lines
    (Google style), so parameters can carry descriptions without `Annotated`."""
    summary: list[str] = []
    args: dict[str, str] = {}
    in_args = False
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if in_args:
            if stripped.endswith(":") and not line.startswith((" ", "\t")):
                in_args = False
                continue
            m = _ARG_LINE.match(line)
            if m and line.startswith((" ", "\t")) and len(line) - len(line.lstrip()) <= 8:
                current = m.group(1).lstrip("*")
                args[current] = m.group(2).strip()
            elif current and stripped:
                args[current] += " " + stripped
            continue
        summary.append(line)
    return "\n".join(summary).strip(), args
