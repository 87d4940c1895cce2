"""The epic title generator with per-team quotas (see README.md)."""
