"""Ollama's native API (`/api/chat`, `/api/embed`, `/api/tags`), spoken by a local daemon and by
ollama.com alike; streams are newline-delimited JSON rather than SSE."""
