"""Anthropic's Messages API wire format (`/v1/messages`), spoken by api.anthropic.com."""
