"""Source code: the whole file as one section of kind "code" (lines kept exactly, so the code
chunker's line ranges are the file's), with the programming language in `language` — for
code, that is the language a reader needs to know. The language comes from the extension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatewise.rag.loaders._common import Part, build_document, decode_text, trim_lines
from gatewise.rag.types import LoadedDocument

# Extension → programming language.
LANGUAGES: Mapping[str, str] = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript",
    ".go": "go", ".rs": "rust", ".java": "java", ".kt": "kotlin", ".kts": "kotlin",
    ".scala": "scala", ".swift": "swift", ".c": "c", ".h": "c", ".cpp": "cpp", ".cc": "cpp",
    ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp", ".cs": "csharp", ".rb": "ruby",
    ".php": "php", ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ps1": "powershell",
    ".lua": "lua", ".r": "r", ".sql": "sql", ".pl": "perl", ".pm": "perl", ".dart": "dart",
    ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml",
    ".clj": "clojure", ".jl": "julia", ".zig": "zig", ".nim": "nim", ".vue": "vue",
    ".svelte": "svelte", ".css": "css", ".scss": "scss", ".yaml": "yaml", ".yml": "yaml",
    ".toml": "toml", ".ini": "ini", ".cfg": "ini", ".proto": "protobuf", ".tf": "terraform",
    ".gradle": "groovy", ".groovy": "groovy", ".m": "objective-c", ".mm": "objective-c",
}


def load_code(data: bytes, *, source: str | None, document_id: str | None,
              metadata: Mapping[str, Any] | None, language: str) -> LoadedDocument:
    text = decode_text(data, what="source file")
    trimmed = trim_lines(text.split("\n"), 1)
    parts = [] if trimmed is None else [
        Part(trimmed[0], kind="code", start_line=trimmed[1], end_line=trimmed[2])]
    title = source.replace("\\", "/").rsplit("/", 1)[-1] if source else None
    return build_document(parts, fmt="code", source=source, document_id=document_id,
                          title=title, metadata=metadata, language=language)
