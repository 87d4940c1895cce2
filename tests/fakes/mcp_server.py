"""A real MCP server over stdio, built with the official SDK (`MCPServer`, FastMCP's name in
mcp 2.x). Tests start it as a subprocess: `python -m tests.fakes.mcp_server`.

Tools: `add` (integers), `shout` (a string, an enum option), `explode` (always fails, to
show an MCP error result becomes a tool result, not a crash), `calls` (how many tool calls
this process has served, proving calls went through the protocol to this process).
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("gatewise-test-tools")
_served = [0]


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    _served[0] += 1
    return a + b


@server.tool()
def shout(text: Annotated[str, "what to shout"], style: Literal["upper", "title"] = "upper") -> str:
    """Shouts the text."""
    _served[0] += 1
    return text.upper() + "!" if style == "upper" else text.title() + "!"


@server.tool()
def explode(reason: str) -> str:
    """Always fails."""
    _served[0] += 1
    raise ToolError(f"boom: {reason}")


@server.tool()
def calls() -> int:
    """How many tool calls this server process has served."""
    return _served[0]


if __name__ == "__main__":
    server.run("stdio")
