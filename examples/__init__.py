"""Example applications built on gatewise's public API (see README.md)."""
