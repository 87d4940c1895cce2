"""One endpoint family per module."""
