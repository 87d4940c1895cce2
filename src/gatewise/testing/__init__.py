"""Test doubles shipped with gatewise, for applications' own tests (no network, no model)."""

from gatewise.testing.fake import FakeProvider

__all__ = ["FakeProvider"]
