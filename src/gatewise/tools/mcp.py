"""Tools served by an MCP server, listed and invoked through the MCP protocol (official SDK).

`McpServer` owns one client session: a subprocess spoken to over stdio (a command line) or a
streamable-HTTP endpoint (a URL). Open it with `async with` or `start()`/`aclose()`, then hand
it to `ToolRegistry.add_from_mcp`. The `mcp` package is an optional extra, imported only here and
only when a server is opened.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gatewise.errors import ConfigError


@dataclass(frozen=True, slots=True)
class McpToolInfo:
    name: str
    description: str
    input_schema: dict[str, Any]


class McpToolError(Exception):
    """The MCP server answered a tool call with `isError`; the message is the tool's text."""


class McpServer:
    """One MCP server: `McpServer(["python", "server.py"])` (stdio) or
    `McpServer("http://127.0.0.1:8000/mcp")` (streamable HTTP)."""

    def __init__(self, target: str | Sequence[str], *, name: str | None = None,
                 env: Mapping[str, str] | None = None, cwd: str | None = None,
                 permission: str | None = None, timeout_s: float = 30.0) -> None:
        if isinstance(target, str) and not target.startswith(("http://", "https://")):
            raise ConfigError(f"MCP server target {target!r}: give a command as a list of "
                              "arguments, or an http(s) URL")
        if not isinstance(target, str) and not target:
            raise ConfigError("MCP server command is empty")
        self.target = target if isinstance(target, str) else list(target)
        self.name = name or (target if isinstance(target, str) else target[-1])
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        # Permission every tool of this server needs unless `add_from_mcp` says otherwise.
        self.permission = permission
        self.timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._client: Any = None

    async def start(self) -> McpServer:
        """Opens the session in a task of its own: the SDK's task groups must be closed by the
        task that opened them, and the caller who opens a server is often not the one who
        closes it (fixtures, application lifespans)."""
        if self._client is not None:
            return self
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Any] = loop.create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._own_session(ready), name=f"mcp:{self.name}")
        try:
            self._client = await ready
        except BaseException:
            self._task = None
            raise
        return self

    async def _own_session(self, ready: asyncio.Future[Any]) -> None:
        from mcp import Client, StdioServerParameters

        server: Any
        if isinstance(self.target, str):
            server = self.target
        else:
            server = StdioServerParameters(command=self.target[0], args=self.target[1:],
                                           env=self.env, cwd=self.cwd)
        try:
            async with Client(server, read_timeout_seconds=self.timeout_s) as client:
                ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
                return
            raise

    async def aclose(self) -> None:
        task, self._task, self._client = self._task, None, None
        if task is not None:
            self._stop.set()
            await task

    async def __aenter__(self) -> McpServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _live(self) -> Any:
        if self._client is None:
            raise RuntimeError(f"MCP server {self.name} is not open; use `async with` or start()")
        return self._client

    async def list_tools(self) -> list[McpToolInfo]:
        client = self._live()
        out: list[McpToolInfo] = []
        cursor: str | None = None
        for _ in range(100):  # pages; a bound so a broken server cannot loop us forever
            page = await client.list_tools(cursor=cursor)
            for t in page.tools:
                schema = dict(t.input_schema or {"type": "object"})
                out.append(McpToolInfo(t.name, t.description or "", schema))
            cursor = page.next_cursor
            if not cursor:
                break
        return out

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Any:
        """The tool's text content (joined), else its structured content. Raises
        `McpToolError` when the server flags the result as an error."""
        result = await self._live().call_tool(name, dict(arguments))
        texts = [getattr(c, "text", None) for c in result.content]
        text = "\n".join(t for t in texts if isinstance(t, str))
        if result.is_error:
            raise McpToolError(text or f"MCP tool {name} failed")
        if text:
            return text
        if result.structured_content is not None:
            return result.structured_content
        return json.dumps([c.model_dump(mode="json") for c in result.content])
