"""The banking voice assistant's LLM handler (see README.md)."""
