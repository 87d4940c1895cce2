"""`gatewise prompts ...` and `gatewise conversations ...`: templates and kept conversations
from the command line over the configured stores (SQLite here), as an operator runs them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from gatewise.cli.main import main
from gatewise.gateway import Gateway
from gatewise.pipeline.core import Identity


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "gatewise.yaml"
    path.write_text(yaml.safe_dump({
        "models": {"chat": [{"model": "fake/chat"}]},
        "storage": {"state_dir": str(tmp_path / "state"), "database": "sqlite"},
        "prompts": {"templates": {"support": {
            "role": "a support agent for {{ product }}",
            "instructions": "Answer in {{ language }}.",
            "variables": {"product": {"type": "string"},
                          "language": {"type": "string", "default": "English"}}}}}}))
    return path


async def _main(argv: list[str]) -> int:
    """`main` runs its own event loop: off this test's loop, in a worker thread."""
    return await asyncio.to_thread(main, argv)


async def test_a_config_template_is_listed_shown_and_rendered_with_its_variables(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path))
    assert await _main(["prompts", "list", "-c", cfg]) == 0
    assert any(line.split()[:3] == ["support", "v1", "config"]
               for line in capsys.readouterr().out.splitlines())
    assert await _main(["prompts", "show", "support", "-c", cfg]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "support" and shown["spec"]["instructions"].startswith("Answer in")
    assert await _main(["prompts", "render", "support", "--var", "product=Acme Router",
                        "--var", "language=German", "--user", "It blinks red", "-c", cfg]) == 0
    messages = json.loads(capsys.readouterr().out)
    assert messages[0]["role"] == "system"
    assert "support agent for Acme Router" in messages[0]["content"]
    assert "Answer in German." in messages[0]["content"]
    assert messages[-1] == {"role": "user", "content": "It blinks red"}


async def test_a_missing_variable_names_itself_and_a_config_template_is_read_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path))
    assert await _main(["prompts", "render", "support", "-c", cfg]) == 1
    assert "product" in capsys.readouterr().err
    spec = tmp_path / "support.yaml"
    spec.write_text("instructions: hi\n")
    assert await _main(["prompts", "publish", "support", str(spec), "-c", cfg]) == 1
    assert "read-only" in capsys.readouterr().err
    assert await _main(["prompts", "delete", "support", "-c", cfg]) == 1


async def test_published_templates_get_versions_and_can_be_pinned_and_deleted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path))
    spec = tmp_path / "greet.yaml"
    spec.write_text("instructions: Greet {{ who }} briefly.\n"
                    "variables: {who: {type: string}}\n")
    assert await _main(["prompts", "publish", "greet", str(spec), "-c", cfg]) == 0
    spec.write_text("instructions: Greet {{ who }} warmly.\n"
                    "variables: {who: {type: string}}\n")
    assert await _main(["prompts", "publish", "greet", str(spec), "-c", cfg]) == 0
    assert capsys.readouterr().out.splitlines() == ["published greet v1", "published greet v2"]
    assert await _main(["prompts", "versions", "greet", "-c", cfg]) == 0
    assert capsys.readouterr().out.split() == ["greet", "v1", "store", "greet", "v2", "store"]
    assert await _main(["prompts", "render", "greet@1", "--var", "who=Ada", "-c", cfg]) == 0
    assert "Greet Ada briefly." in capsys.readouterr().out
    assert await _main(["prompts", "delete", "greet", "-c", cfg]) == 0
    assert "deleted 2 version(s)" in capsys.readouterr().out
    assert await _main(["prompts", "show", "greet", "-c", cfg]) == 1


async def test_conversations_are_listed_shown_and_deleted_per_team(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    async with Gateway(cfg) as gw:
        await gw.chat("What is my order status?", model="chat", conversation="conv-1",
                      identity=Identity(tenant="red", team="red"))
        await gw.chat("And the refund?", model="chat", conversation="conv-1",
                      identity=Identity(tenant="red", team="red"))
    c = str(cfg)
    assert await _main(["conversations", "list", "--team", "red", "-c", c]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("conv-1 ") and "messages=4" in line
    # Another team sees nothing, and cannot read or delete it.
    assert await _main(["conversations", "list", "-c", c]) == 0
    assert capsys.readouterr().out == ""
    assert await _main(["conversations", "show", "conv-1", "-c", c]) == 1
    assert "conv-1" in capsys.readouterr().err
    assert await _main(["conversations", "show", "conv-1", "--team", "red", "--json",
                        "-c", c]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [m["role"] for m in record["messages"]] == ["user", "assistant", "user", "assistant"]
    assert record["messages"][2]["content"] == "And the refund?"
    assert await _main(["conversations", "delete", "conv-1", "--team", "red", "-c", c]) == 0
    assert await _main(["conversations", "show", "conv-1", "--team", "red", "-c", c]) == 1
