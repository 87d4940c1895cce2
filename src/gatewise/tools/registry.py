"""The tool registry: the only tools a model may see or call, each with the permission it needs.

Tools come from Python functions (schema derived from type hints or a pydantic model), from
config (schema given as data, handler as an import path or none), or from an MCP server
(listed and invoked through the protocol). Each tool's schema is compiled once, here, so
validating a call costs microseconds; `tools_for(identity)` hands out prebuilt `Tool` structs.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, overload

from gatewise.errors import ConfigError
from gatewise.pipeline.core import Identity
from gatewise.tools.derive import Derived, derive
from gatewise.tools.mcp import McpServer
from gatewise.types.jsonschema import SchemaError, Validator, compile_schema
from gatewise.types.requests import FunctionDefinition, Tool

Source = Literal["python", "config", "mcp"]
F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"^[a-zA-Z0-9_.\-]{1,64}$")
_CONFIG_KEYS = frozenset({"name", "description", "parameters", "permission", "handler"})


@dataclass(slots=True)
class RegisteredTool:
    name: str
    description: str
    parameters: dict[str, Any]
    permission: str | None = None
    handler: Callable[..., Any | Awaitable[Any]] | None = None
    source: Source = "python"
    # How validated JSON arguments become a handler call (python tools only).
    derived: Derived | None = None
    # The MCP server that runs this tool, and the tool's name there.
    mcp: McpServer | None = None
    mcp_name: str | None = None
    check: Validator = field(init=False, repr=False)
    tool: Tool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"tool name {self.name!r} must be 1-64 of a-z A-Z 0-9 _ . -")
        if self.parameters.get("type", "object") != "object":
            raise ConfigError(f"tool {self.name}: parameters must be an object schema")
        try:
            self.check = compile_schema(self.parameters, member="argument")
        except SchemaError as exc:
            raise ConfigError(f"tool {self.name}: parameters schema: {exc}") from None
        self.tool = Tool(type="function", function=FunctionDefinition(
            name=self.name, description=self.description or None, parameters=self.parameters))

    @property
    def executable(self) -> bool:
        return self.handler is not None or self.mcp is not None

    def permitted(self, identity: Identity) -> bool:
        return self.permission is None or identity.can(self.permission)

    async def invoke(self, arguments: Mapping[str, Any], identity: Identity) -> Any:
        """Runs the tool with arguments that already passed validation. Sync handlers run in a
        worker thread so a slow one cannot stall the event loop."""
        if self.mcp is not None:
            return await self.mcp.call_tool(self.mcp_name or self.name, arguments)
        handler = self.handler
        if handler is None:
            raise RuntimeError(f"tool {self.name} has no handler (declared in config only)")
        args, kwargs = self._call_args(arguments, identity)
        if inspect.iscoroutinefunction(handler):
            return await handler(*args, **kwargs)
        result = await asyncio.to_thread(handler, *args, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result

    def _call_args(self, arguments: Mapping[str, Any],
                   identity: Identity) -> tuple[list[Any], dict[str, Any]]:
        d = self.derived
        if d is None:  # a config tool's handler takes the arguments as keywords
            return [], dict(arguments)
        kwargs: dict[str, Any]
        if d.model_param is not None:
            pname, model = d.model_param
            kwargs = {pname: model.model_validate(dict(arguments))}
        else:
            kwargs = dict(arguments)
            for pname, convert in d.converters.items():
                if kwargs.get(pname) is not None:
                    kwargs[pname] = convert(kwargs[pname])
        if d.identity_param is not None:
            kwargs[d.identity_param] = identity
        return [], kwargs


class ToolRegistry:
    """Tools by name. Registering a name twice is a mistake and says so."""

    def __init__(self) -> None:
        self._tools: dict[str, RegisteredTool] = {}

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[RegisteredTool]:
        return iter(self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> RegisteredTool | None:
        return self._tools.get(name)

    def add(self, tool: RegisteredTool, *, replace: bool = False) -> RegisteredTool:
        if tool.name in self._tools and not replace:
            raise ConfigError(f"tool {tool.name} is already registered")
        self._tools[tool.name] = tool
        return tool

    @overload
    def register(self, fn: F, *, name: str | None = None, permission: str | None = None,
                 description: str | None = None) -> F: ...

    @overload
    def register(self, fn: None = None, *, name: str | None = None,
                 permission: str | None = None,
                 description: str | None = None) -> Callable[[F], F]: ...

    def register(self, fn: F | None = None, *, name: str | None = None,
                 permission: str | None = None,
                 description: str | None = None) -> F | Callable[[F], F]:
        """Registers a Python function as a tool; usable as `@registry.register` or
        `@registry.register(permission="tools:payments")`. Returns the function unchanged."""

        def add(f: F) -> F:
            try:
                d = derive(f)
            except TypeError as exc:
                raise ConfigError(str(exc)) from None
            self.add(RegisteredTool(
                name=name or f.__name__, description=description or d.description,
                parameters=d.parameters, permission=permission, handler=f, source="python",
                derived=d))
            return f

        return add(fn) if fn is not None else add

    def add_from_config(self, spec: Mapping[str, Any]) -> list[RegisteredTool]:
        """One tool (`{name, description, parameters, permission, handler}`) or several
        (`{"tools": [...]}`). `handler` is an import path `package.module:function`; without
        one the tool can be offered and validated but not run by `run_tools`. A parameters
        object schema that does not say otherwise forbids extra properties."""
        items = spec.get("tools") if "tools" in spec else [spec]
        if not isinstance(items, list):
            raise ConfigError("'tools' must be a list", path="tools")
        added: list[RegisteredTool] = []
        for i, item in enumerate(items):
            where = f"tools[{i}]" if "tools" in spec else "tool"
            if not isinstance(item, Mapping):
                raise ConfigError("each tool must be a mapping", path=where)
            unknown = sorted(set(item) - _CONFIG_KEYS)
            if unknown:
                raise ConfigError(f"unknown key(s) {', '.join(unknown)}", path=where)
            name = item.get("name")
            if not isinstance(name, str):
                raise ConfigError("'name' is required", path=f"{where}.name")
            params = dict(item.get("parameters") or {"type": "object", "properties": {}})
            if params.get("type", "object") == "object" and "properties" in params:
                params.setdefault("additionalProperties", False)
            handler = item.get("handler")
            fn = _import_handler(handler, f"{where}.handler") if handler is not None else None
            perm = item.get("permission")
            if perm is not None and not isinstance(perm, str):
                raise ConfigError("'permission' must be a string", path=f"{where}.permission")
            try:
                tool = RegisteredTool(name=name, description=str(item.get("description") or ""),
                                      parameters=params, permission=perm, handler=fn,
                                      source="config")
            except ConfigError as exc:
                raise ConfigError(exc.message, path=where) from None
            added.append(self.add(tool))
        return added

    async def add_from_mcp(self, server: McpServer, *, permission: str | None = None,
                           prefix: str = "") -> list[RegisteredTool]:
        """Every tool `server` lists, under `prefix + name`; calls go back through the server's
        session. `permission` (or the server's) is required to see or call any of them."""
        perm = permission if permission is not None else server.permission
        added: list[RegisteredTool] = []
        for info in await server.list_tools():
            params = dict(info.input_schema)
            params.setdefault("type", "object")
            added.append(self.add(RegisteredTool(
                name=prefix + info.name, description=info.description, parameters=params,
                permission=perm, source="mcp", mcp=server, mcp_name=info.name)))
        return added

    def tools_for(self, identity: Identity) -> list[Tool]:
        """The tools this caller may see, in registration order."""
        return [t.tool for t in self._tools.values() if t.permitted(identity)]

    def permitted(self, identity: Identity) -> list[RegisteredTool]:
        return [t for t in self._tools.values() if t.permitted(identity)]


def _import_handler(path: Any, where: str) -> Callable[..., Any]:
    if not isinstance(path, str) or ":" not in path:
        raise ConfigError("handler must be an import path 'package.module:function'", path=where)
    module, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {path}: {exc}", path=where) from None
    if not callable(obj):
        raise ConfigError(f"{path} is not callable", path=where)
    return obj  # type: ignore[no-any-return]
