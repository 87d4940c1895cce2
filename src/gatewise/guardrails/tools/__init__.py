"""Tools constrained to what is registered: the registry, call validation and repair, the
guard middleware, and the loop helper for applications. Nothing here imports `mcp` or
`pydantic` until an MCP server is opened or a pydantic model is registered."""

from gatewise.guardrails.tools.loop import ToolLoopResult, ToolStep, run_tools
from gatewise.guardrails.tools.mcp_source import McpServer, McpToolError
from gatewise.guardrails.tools.middleware import ToolCallStreamCheck, ToolGuardMiddleware
from gatewise.guardrails.tools.registry import RegisteredTool, ToolRegistry
from gatewise.guardrails.tools.validate import (
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
    "ToolCallStreamCheck",
    "ToolGuardMiddleware",
    "ToolLoopResult",
    "ToolRegistry",
    "ToolStep",
    "ValidatedCall",
    "run_tools",
    "validate_tool_call",
    "validate_tool_calls",
]
