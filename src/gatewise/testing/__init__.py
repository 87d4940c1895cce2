"""Test doubles shipped with gatewise, for applications' own tests (no network, no model)."""

from gatewise.testing.fake import FakeProvider
from gatewise.testing.scripted import Reply, ScriptedProvider, tool_call

__all__ = ["FakeProvider", "Reply", "ScriptedProvider", "tool_call"]
