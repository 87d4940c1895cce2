"""Model formats as data: the built-in table, config rules before it (field by field), and
the system-message shapes (keep, developer, merged into the first user turn)."""

from __future__ import annotations

import msgspec

from gatewise.config.schema import ModelFormatConfig
from gatewise.prompts.fewshot import Example
from gatewise.prompts.formats import DEFAULT, FormatTable, ModelFormat, apply_system_style
from gatewise.prompts.render import RenderedPrompt
from gatewise.types.messages import (
    AssistantMessage,
    DeveloperMessage,
    Message,
    SystemMessage,
    TextPart,
    UserMessage,
)


def test_the_built_in_table() -> None:
    t = FormatTable()
    assert t.lookup("openai", "gpt-4o") == DEFAULT
    assert t.lookup("gemini", "gemma-3-27b-it").system == "merge"
    assert t.lookup("ollama", "gemma3:4b").system == "merge"
    assert t.lookup("openai", "o1-mini-2024-09-12").system == "merge"
    claude = t.lookup("anthropic", "claude-sonnet-4-5")
    assert (claude.system, claude.sections, claude.examples) == ("system", "xml", "inline")
    assert t.lookup("openrouter", "anthropic/claude-3.5-haiku").sections == "xml"


def test_config_rules_come_first_and_leave_unset_fields_to_the_table() -> None:
    t = FormatTable([msgspec.convert({"match": "gemini/gemma-*", "sections": "xml"},
                                     ModelFormatConfig),
                     msgspec.convert({"match": "openai/o3*", "system": "developer"},
                                     ModelFormatConfig)])
    gemma = t.lookup("gemini", "gemma-3-4b-it")
    assert (gemma.system, gemma.sections) == ("merge", "xml")  # merge kept from the table
    assert t.lookup("openai", "o3-mini").system == "developer"
    assert t.lookup("Gemini", "GEMMA-3-4B-IT") == gemma  # case does not matter


def _msgs() -> list[Message]:
    return [SystemMessage(content="Be brief."), UserMessage(content="Hi"),
            AssistantMessage(content="Hello"), UserMessage(content="Bye")]


def test_system_messages_kept_as_they_are() -> None:
    msgs = _msgs()
    assert apply_system_style(msgs, "system") is msgs


def test_system_messages_as_developer_messages() -> None:
    out = apply_system_style(_msgs(), "developer")
    assert out[0] == DeveloperMessage(content="Be brief.")
    assert out[1:] == _msgs()[1:]


def test_system_messages_merged_into_the_first_user_turn() -> None:
    out = apply_system_style([*_msgs(), SystemMessage(content="Late rule.")], "merge")
    assert out[0] == UserMessage(content="Be brief.\n\nLate rule.\n\nHi")
    assert out[1:] == _msgs()[2:]
    parts = apply_system_style([SystemMessage(content="S"),
                                UserMessage(content=[TextPart(text="U")])], "merge")
    assert parts == [UserMessage(content=[TextPart(text="S"), TextPart(text="U")])]
    alone = apply_system_style([SystemMessage(content="S")], "merge")
    assert alone == [UserMessage(content="S")]


def test_a_rendered_template_is_laid_out_per_format() -> None:
    r = RenderedPrompt("p", 1, role="You are a guide.", instructions="Be kind.",
                       output_format="Respond with JSON.",
                       examples=[Example("2+2", "4")], turns=[UserMessage(content="Go")])
    md = r.prefix(DEFAULT)
    assert md[0] == SystemMessage(content="You are a guide.\n\n## Instructions\nBe kind.\n\n"
                                          "## Output format\nRespond with JSON.")
    assert md[1:] == [UserMessage(content="2+2"), AssistantMessage(content="4"),
                      UserMessage(content="Go")]
    xml = r.prefix(ModelFormat(sections="xml", examples="inline"))
    assert xml == [SystemMessage(content=(
        "You are a guide.\n\n<instructions>\nBe kind.\n</instructions>\n\n"
        "<output_format>\nRespond with JSON.\n</output_format>\n\n<examples>\n<example>\n"
        "<input>2+2</input>\n<output>4</output>\n</example>\n</examples>")),
        UserMessage(content="Go")]
