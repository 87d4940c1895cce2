"""Tools from a real MCP server (the official SDK's server over stdio, as a subprocess): listed
through the protocol, validated like any other tool, invoked through the session, and run
from the tool loop."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gatewise.errors import ConfigError
from gatewise.pipeline.core import Identity
from gatewise.tools import McpServer, McpToolError, ToolRegistry, run_tools
from gatewise.tools.validate import ValidatedCall, validate_tool_call
from gatewise.types.messages import FunctionCall, ToolCall
from tests.unit.tools.support import call, scripted_gateway

pytest.importorskip("mcp")

ROOT = Path(__file__).resolve().parents[2]
OPS = Identity(permissions=frozenset({"llm:generate", "tools:math"}))
GUEST = Identity(permissions=frozenset({"llm:generate"}))


@pytest.fixture
async def server() -> AsyncIterator[McpServer]:
    async with McpServer([sys.executable, "-m", "tests.fakes.mcp_server"], cwd=str(ROOT),
                         name="test-tools", permission="tools:math") as srv:
        yield srv


async def test_tools_are_listed_through_the_protocol_with_their_schemas(server: McpServer) -> None:
    reg = ToolRegistry()
    added = await reg.add_from_mcp(server, prefix="m.")
    assert [t.name for t in added] == ["m.add", "m.shout", "m.explode", "m.calls"]
    add = reg.get("m.add")
    assert add is not None and add.source == "mcp" and add.permission == "tools:math"
    assert add.description == "Adds two integers."
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert reg.get("m.shout").parameters["properties"]["style"]["enum"] == ["upper", "title"]  # type: ignore[union-attr]
    assert reg.tools_for(GUEST) == [] and len(reg.tools_for(OPS)) == 4


async def test_calls_go_through_the_session_and_mcp_errors_surface(server: McpServer) -> None:
    reg = ToolRegistry()
    await reg.add_from_mcp(server)
    assert await reg.get("add").invoke({"a": 2, "b": 40}, OPS) == "42"  # type: ignore[union-attr]
    assert await reg.get("shout").invoke({"text": "hi", "style": "title"}, OPS) == "Hi!"  # type: ignore[union-attr]
    with pytest.raises(McpToolError, match="boom: on purpose"):
        await reg.get("explode").invoke({"reason": "on purpose"}, OPS)  # type: ignore[union-attr]
    assert await reg.get("calls").invoke({}, OPS) == "3"  # type: ignore[union-attr]


async def test_mcp_tool_calls_are_validated_before_anything_reaches_the_server(
        server: McpServer) -> None:
    reg = ToolRegistry()
    await reg.add_from_mcp(server)

    def tc(name: str, args: str) -> ToolCall:
        return ToolCall(id="c", type="function", function=FunctionCall(name=name, arguments=args))

    assert isinstance(validate_tool_call(tc("add", '{"a": 1, "b": 2}'), reg, OPS), ValidatedCall)
    [p] = validate_tool_call(tc("add", '{"a": "1", "b": 2}'), reg, OPS)  # type: ignore[misc]
    assert (p.path, p.reason) == ("$.a", "expected integer, got string")
    [p] = validate_tool_call(tc("shout", '{"text": "x", "style": "lower"}'), reg, OPS)  # type: ignore[misc]
    assert p.reason == 'must be one of ["upper", "title"]'
    [p] = validate_tool_call(tc("add", '{"a": 1, "b": 2}'), reg, GUEST)  # type: ignore[misc]
    assert p.kind == "not_permitted"
    assert await reg.get("calls").invoke({}, OPS) == "0"  # type: ignore[union-attr]


async def test_the_tool_loop_runs_mcp_tools_and_turns_their_errors_into_results(
        server: McpServer) -> None:
    reg = ToolRegistry()
    await reg.add_from_mcp(server)
    gw, _ = scripted_gateway([call("add", {"a": 20, "b": 22}),
                                  call("explode", {"reason": "test"}), "The answer is 42."])
    async with gw:
        out = await run_tools(gw, messages=[{"role": "user", "content": "20+22?"}], registry=reg,
                              identity=OPS)
    assert out.completed and out.content == "The answer is 42."
    assert [(s.tool, s.result) for s in out.steps] == [
        ("add", "42"), ("explode", "error: the tool failed: McpToolError: Error executing tool "
                                   "explode: boom: test")]


async def test_a_closed_server_says_so_and_bad_targets_are_config_errors() -> None:
    srv = McpServer([sys.executable, "-c", "pass"])
    with pytest.raises(RuntimeError, match="not open"):
        await srv.list_tools()
    with pytest.raises(ConfigError, match="http"):
        McpServer("python server.py")


@pytest.mark.local_model
async def test_the_embedded_local_model_calls_an_mcp_tool_under_its_grammar(server: McpServer) -> None:
    """tool_choice "required" on the first turn: llama.cpp's grammar makes the call parse
    against the MCP tool's schema, the loop validates it again and runs it over MCP."""
    pytest.importorskip("llama_cpp")
    from gatewise import Gateway
    from gatewise.config.loader import parse_config, resolve_config

    reg = ToolRegistry()
    await reg.add_from_mcp(server)
    cfg, w = parse_config({"models": {"local": [{"model": "llamacpp/smollm2-135m"}]},
                           "default_model": "local", "accounting": {"enabled": False},
                           "storage": {"database": "memory"}})
    try:
        gw = Gateway(resolve_config(cfg, None, {}, w))
    except ConfigError as exc:  # the model package is not installed here
        pytest.skip(str(exc))
    async with gw:
        out = await run_tools(gw, messages=[{"role": "user", "content": "What is 2 plus 3?"}],
                              registry=reg, identity=OPS, tool_choice={
                                  "type": "function", "function": {"name": "add"}},
                              max_tokens=40, max_steps=2)
    first = out.steps[0]
    assert first.tool == "add" and first.executed and first.error is None
    assert first.arguments is not None and set(first.arguments) == {"a", "b"}
    assert first.result == str(first.arguments["a"] + first.arguments["b"])
