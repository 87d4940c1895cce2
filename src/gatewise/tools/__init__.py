"""Tools a model may call: the registry (Python functions, config, MCP servers), the check of
a call against what is registered, and the loop helper for applications. Guarding the calls a
model makes on the way through the gateway is `gatewise.guardrails.tools`'s job. Nothing here
imports `mcp` or `pydantic` until an MCP server is opened or a pydantic model is registered."""

from gatewise.tools.loop import ToolLoopResult, ToolStep, run_tools
from gatewise.tools.mcp import McpServer, McpToolError
from gatewise.tools.registry import RegisteredTool, ToolRegistry
from gatewise.tools.validate import (
    ToolCallProblem,
    ValidatedCall,
    validate_tool_call,
    validate_tool_calls,
)

__all__ = [
    "McpServer",
    "McpToolError",
    "RegisteredTool",
    "ToolCallProblem",
    "ToolLoopResult",
    "ToolRegistry",
    "ToolStep",
    "ValidatedCall",
    "run_tools",
    "validate_tool_call",
    "validate_tool_calls",
]
