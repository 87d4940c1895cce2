"""The timeline's widgets, coloured by what kind of step each block is.

The running turn's blocks are one `BlockView` each (an answer's is updated in place as it
streams); a finished turn is folded into one `TurnView` showing the same lines. Textual lays
out every widget of a scroll view on each change, so a long session kept as hundreds of small
widgets would make each new block and each keystroke slower (about 0.5 s a block after 300
blocks); one widget per finished turn keeps that cost flat."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from .timeline import Block, describe, detail_lines, stamp

# Colours by kind: decisions blue, attempts cyan, failures red, figures green.
_STYLE = {
    "input": "bold",
    "step": "bold magenta",
    "route": "blue", "rule": "blue", "step_route": "blue", "complexity": "blue",
    "cache": "yellow", "pii": "yellow", "prompt_injection": "yellow", "rag": "yellow",
    "attempt": "cyan", "retry": "dark_orange", "failover": "dark_orange",
    "attempt_failed": "red", "error": "bold red", "cancelled": "bold red",
    "first_token": "green", "done": "bold green", "tool": "bright_magenta",
    "answer": "default", "info": "dim",
}


class BlockView(Static):
    """One block. An answer's view is updated in place as its text streams in."""

    DEFAULT_CSS = """
    BlockView { padding: 0 1; }
    BlockView.input { margin-top: 1; }
    """

    def __init__(self, block: Block, *, mask_timings: bool = False) -> None:
        self.block = block
        self.mask_timings = mask_timings
        super().__init__(block_text(block, mask_timings), classes=block.kind, markup=False)

    def refresh_block(self) -> None:
        self.update(block_text(self.block, self.mask_timings))


def block_text(b: Block, mask_timings: bool = False) -> Text:
    label, text = describe(b, mask_timings=mask_timings)
    style = _STYLE.get(b.kind, "default")
    if b.kind == "answer":
        head = Text(f"  {b.step or 'answer'} > ", style="bold")
        return head + Text(text or "…")
    out = Text()
    out.append(f"{label:>12} ", style=style)
    out.append(text)
    when = stamp(b, mask_timings=mask_timings)
    if when:
        out.append(f"  {when}", style="dim")
    for line in detail_lines(b):  # under the text, past the label column
        out.append("\n" + " " * 13 + line)
    if b.kind in ("input", "error", "cancelled"):
        out.stylize("on grey15" if b.kind == "input" else "on #3a1010")
    return out


class TurnView(Static):
    """A finished turn (and the notes around it): its blocks' lines in one widget."""

    DEFAULT_CSS = """
    TurnView { padding: 0 1; }
    """

    def __init__(self, blocks: list[Block], *, mask_timings: bool = False) -> None:
        self.blocks = blocks
        lines = []
        for b in blocks:
            if b.kind == "input":
                lines.append(Text(""))
            lines.append(block_text(b, mask_timings))
        super().__init__(Text("\n").join(lines), markup=False)
