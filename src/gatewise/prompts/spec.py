"""A prompt template's definition, how requests name one (`name`, `name@3`), and the checks
on the variables a request gives it.

A template is the config schema's `PromptTemplateConfig` (the same type in `gatewise.yaml`, in
a prompts directory and in the admin API's body) under a name. Variables are declared with a
JSON type and `required`; what a request gives is checked against them before anything is
rendered, so a missing one is a 400 whose `param` names it (`prompt_variables.customer`), a
value of the wrong type likewise, and a variable the template does not declare is refused (a
typo would otherwise be silently ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gatewise.config.schema import PromptTemplateConfig, PromptVariableConfig
from gatewise.errors import (
    MissingPromptVariableError,
    PromptNotFoundError,
    PromptVariableError,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)
_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]{0,127})(?:@(?P<version>[1-9][0-9]{0,6}))?$")
VARIABLES_PARAM = "prompt_variables"
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list, tuple), "object": (dict,),
}


__all__ = ["MissingPromptVariableError", "PromptNotFoundError", "PromptRef", "PromptSpec",
           "PromptVariableError", "bind_variables", "parse_ref", "template_sources",
           "valid_name"]


@dataclass(frozen=True, slots=True)
class PromptRef:
    name: str
    version: int | None = None  # None: the latest

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class PromptSpec:
    name: str
    version: int
    template: PromptTemplateConfig
    source: str  # "config" or "store"


def parse_ref(ref: str, *, param: str = "metadata.prompt") -> PromptRef:
    m = _REF.match(ref)
    if m is None:
        raise PromptNotFoundError("a prompt is named `name` or `name@version` (letters, digits, "
                                  "`_.-`; version a positive integer)", param=param)
    version = m.group("version")
    return PromptRef(m.group("name"), int(version) if version else None)


def valid_name(name: str) -> bool:
    return _NAME.match(name) is not None


def _type_ok(value: Any, decl: PromptVariableConfig) -> bool:
    if decl.type == "any":
        return True
    if isinstance(value, bool) and decl.type in ("integer", "number"):
        return False
    return isinstance(value, _JSON_TYPES[decl.type])


def bind_variables(spec: PromptSpec, given: dict[str, Any] | None) -> dict[str, Any]:
    """The variables a rendering sees: the given ones checked against the declarations,
    defaults filled in. Templates that declare nothing accept anything (and `StrictUndefined`
    still names what they use but were not given)."""
    given = dict(given or {})
    declared = spec.template.variables
    if not declared:
        return given
    for name in given:
        if name not in declared:
            raise PromptVariableError(
                f"prompt '{spec.name}' has no variable '{name}' (it has: "
                f"{', '.join(sorted(declared))})", param=f"{VARIABLES_PARAM}.{name}")
    out: dict[str, Any] = {}
    for name, decl in declared.items():
        if name in given and given[name] is not None:
            value = given[name]
            if not _type_ok(value, decl):
                raise PromptVariableError(
                    f"prompt variable '{name}' must be of type {decl.type}",
                    param=f"{VARIABLES_PARAM}.{name}")
            out[name] = value
        elif decl.default is not None:
            out[name] = decl.default
        elif decl.required:
            raise MissingPromptVariableError(
                f"prompt '{spec.name}' needs the variable '{name}'",
                param=f"{VARIABLES_PARAM}.{name}")
        else:
            out[name] = None
    return out


def template_sources(t: PromptTemplateConfig) -> list[tuple[str, str]]:
    """(where, text) of every templated field, for compiling at load time."""
    out = [(f"messages[{i}].content", m.content) for i, m in enumerate(t.messages)]
    if t.role:
        out.append(("role", t.role))
    if t.instructions:
        out.append(("instructions", t.instructions))
    return out
