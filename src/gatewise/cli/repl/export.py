"""`/export json|md [path]`: the conversation's timeline as a JSON document (every block, its
data as the gateway reported it) or as Markdown (one heading per turn, one line per step)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .timeline import Block, clip, describe, detail_lines, stamp


def export_json(blocks: list[Block], conversation: str) -> str:
    return json.dumps({"conversation": conversation, "exported_at": time.time(),
                       "blocks": [b.to_json() for b in blocks]}, ensure_ascii=False, indent=2)


def export_markdown(blocks: list[Block], conversation: str) -> str:
    out = [f"# gatewise timeline — conversation `{conversation}`", ""]
    for b in blocks:
        label, text = describe(b)
        if b.kind == "input":
            out += ["", f"## Turn {b.turn}: {clip(text, 80)}", "", f"> {text}", ""]
        elif b.kind == "step":
            out += ["", f"### {text}", ""]
        elif b.kind == "answer":
            out += ["", *(f"    {line}" for line in text.splitlines() or [""]), ""]
        else:
            when = stamp(b)
            out.append(f"- **{label}** {text}" + (f" _{when}_" if when else ""))
            out += [f"  - {line}" for line in detail_lines(b)]
    return "\n".join(out).rstrip() + "\n"


def write_export(kind: str, blocks: list[Block], conversation: str,
                 path: str | None = None) -> Path:
    """Writes the export; the default file is `gatewise-timeline-<conversation>.<json|md>`."""
    if kind not in ("json", "md"):
        raise ValueError("export json or md")
    target = Path(path or f"gatewise-timeline-{conversation}.{kind}").expanduser()
    text = export_json(blocks, conversation) if kind == "json" else \
        export_markdown(blocks, conversation)
    target.write_text(text, encoding="utf-8")
    return target
