"""The timeline: one block per thing that happened, in order, and how each reads.

A block is plain data (kind, pipeline step, the gateway's step data, streamed text), so the
screen, the JSON and Markdown exports and the persisted history all show the same thing. The
figures are the gateway's own (`gatewise.pipeline.steps`): tokens, cost and timings from the
`done` step, never computed here. `mask_timings` prints timings as `…` for reproducible
screenshots (the snapshot tests); nothing else is ever altered.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# The gateway's bookkeeping steps that say nothing a reader of the timeline needs (the
# `cache` step says what `cache_hit` says).
HIDDEN = frozenset({"prompt_estimate", "usage_counted", "cache_hit"})
_TIMINGS = frozenset({"t_ms", "ttft_ms", "latency_ms", "duration_ms"})


@dataclass(slots=True)
class Block:
    kind: str  # input, step, answer, tool, cancelled, info, or a gateway step's name
    step: str | None = None  # the pipeline step it belongs to
    data: dict[str, Any] = field(default_factory=dict)
    text: str = ""  # streamed answer text; an input's or a note's text
    turn: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Block:
        return cls(str(d["kind"]), d.get("step"), dict(d.get("data") or {}),
                   str(d.get("text") or ""), int(d.get("turn") or 0))


def _ms(v: Any, mask: bool) -> str:
    if mask:
        return "… ms"
    if v is None:
        return "? ms"
    return f"{float(v):.0f} ms" if float(v) >= 10 else f"{float(v):.1f} ms"


def _usd(v: Any) -> str:
    if v is None:
        return "$?"
    return f"${float(v):.6f}"


def _tokens(usage: dict[str, Any] | None) -> str:
    u = usage or {}

    def n(key: str) -> str:
        v = u.get(key)
        return "?" if v is None else str(v)

    return f"{n('prompt_tokens')} in · {n('completion_tokens')} out · {n('cached_tokens')} cached"


def describe(block: Block, *, mask_timings: bool = False) -> tuple[str, str]:
    """(label, one-line text) for a block; an answer's text is the block's own. A step of an
    orchestration's branch call (`branch` in its data) says which branch it is first."""
    label, text = _describe(block, mask_timings)
    branch = block.data.get("branch")
    if isinstance(branch, dict):
        role = " judge" if branch.get("judge") else ""
        text = f"[branch {branch.get('index')} {branch.get('model')}{role}] {text}"
    return label, text


def _describe(block: Block, mask_timings: bool) -> tuple[str, str]:
    d = block.data
    k = block.kind
    m = mask_timings
    if k == "input":
        return "you", block.text
    if k == "step":
        return "step", f"{block.step} · model {d.get('model') or 'default'}"
    if k == "answer":
        return "answer", block.text
    if k == "info":
        return "info", block.text
    if k == "cancelled":
        return "cancelled", block.text or "cancelled: the step and its upstream request were stopped"
    if k == "tool":
        args = json.dumps(d.get("arguments"), ensure_ascii=False) if "arguments" in d else "?"
        tail = f"error: {d['error']}" if d.get("error") else str(d.get("result", ""))
        return "tool", f"{d.get('tool')}({args}) → {clip(tail, 160)} ({_ms(d.get('duration_ms'), m)})"
    if k == "route":
        return "route", f"deployment {d.get('deployment')} ({d.get('target')})"
    if k == "rule":
        return "rule", f"rule #{d.get('index')} → alias {d.get('alias')}"
    if k == "step_route":
        return "routing", f"step {d.get('step')} → alias {d.get('alias')}"
    if k == "complexity":
        return "complexity", (f"tier {d.get('tier')} (score {d.get('score')}) → alias "
                              f"{d.get('alias')}")
    if k == "cache":
        result = str(d.get("result", "?")).replace("_", " ")
        sim = f" (similarity {d['similarity']})" if "similarity" in d else ""
        return "cache", result + sim
    if k == "pii":
        ents = ", ".join(f"{e} x{c}" for e, c in (d.get("entities") or {}).items())
        return "pii", f"{d.get('action')}: {ents or 'nothing found'}"
    if k == "prompt_injection":
        return "injection", (f"{d.get('action')}: score {d.get('score')} ({d.get('layer')}, "
                             f"{d.get('channel')})")
    if k == "rag":
        return "retrieval", (f"{d.get('hits')} hits from {d.get('collection')}, "
                             f"{d.get('sources')} sources"
                             + (" · not found" if d.get("not_found") else ""))
    if k == "attempt":
        return "attempt", (f"#{d.get('attempt')} {d.get('provider')}/{d.get('model')} "
                           f"({d.get('reason')}) via {d.get('deployment')}")
    if k == "attempt_failed":
        status = f" {d['status']}" if d.get("status") is not None else ""
        return "failed", (f"{d.get('error_type')}{status} on {d.get('deployment')} → next: "
                          f"{d.get('next', '?')}")
    if k == "retry":
        return "retry", f"retry #{d.get('retry')} of {d.get('deployment')} after {d.get('error_type')}"
    if k == "failover":
        return "failover", (f"{d.get('deployment')} → {d.get('to')}"
                            + (f" ({d['reason']})" if d.get("reason") else ""))
    if k == "first_token":
        return "first token", _ms(d.get("ttft_ms"), m)
    if k == "done":
        where = d.get("deployment") or (f"cache {d['cache']}" if d.get("cache") else "?")
        return "done", (f"{_tokens(d.get('usage'))} · TTFT {_ms(d.get('ttft_ms'), m)} · "
                        f"{_ms(d.get('latency_ms'), m)} · {_usd(d.get('cost_usd'))} · {where}")
    if k == "error":
        status = f" {d['status']}" if d.get("status") is not None else ""
        return "error", f"{d.get('type')}{status}: {d.get('message')}"
    shown = ", ".join(f"{key}={v}" for key, v in d.items() if key not in _TIMINGS)
    return k, shown


_STATUS = {"below_min_score": "below min score", "injection_dropped": "dropped: injection",
           "budget_dropped": "dropped: context"}


def detail_lines(block: Block) -> list[str]:
    """Lines under a block's own: a retrieval's chunks, one each, in rank order (the sources
    numbered as the answer cites them, then what was left out and why)."""
    if block.kind != "rag":
        return []
    out = []
    for c in block.data.get("chunks") or ():
        status = c.get("status")
        where = (f"[{c.get('source_index')}]" if status == "source"
                 else f"({_STATUS.get(status, status)})")
        scores = ", ".join(f"{k} {_num(v)}" for k, v in (c.get("scores") or {}).items())
        line = (f"#{c.get('rank')} {where} {c.get('source') or c.get('document_id')} · "
                f"{c.get('chunk_id')} · score {_num(c.get('score'))}"
                + (f" ({scores})" if scores else "")
                + (" · flagged" if c.get("flagged") else ""))
        if c.get("preview"):
            line += f" · “{clip(str(c['preview']), 120)}”"
        out.append(line)
    return out


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, int | float) else "?"


def clip(s: str, n: int) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def stamp(block: Block, *, mask_timings: bool = False) -> str:
    """`+12.3 ms`: when the gateway reported the step (since its call started)."""
    t = block.data.get("t_ms")
    if t is None:
        return ""
    return "+… ms" if mask_timings else f"+{float(t):.1f} ms"


def gateway_kind(name: str) -> str:
    """The block kind for a gateway step (the router's `step` would clash with ours)."""
    return "step_route" if name == "step" else name


# -- figures ------------------------------------------------------------------------------------
@dataclass(slots=True)
class StepCost:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0


def cost_summary(blocks: list[Block]) -> dict[str, StepCost]:
    """Per pipeline step: the sums of its `done` steps' real usage and cost."""
    out: dict[str, StepCost] = {}
    for b in blocks:
        if b.kind != "done" or "branch" in b.data:  # the call's own `done` sums its branches
            continue
        s = out.setdefault(b.step or "?", StepCost())
        s.calls += 1
        u = b.data.get("usage") or {}
        s.prompt_tokens += int(u.get("prompt_tokens") or 0)
        s.completion_tokens += int(u.get("completion_tokens") or 0)
        s.cached_tokens += int(u.get("cached_tokens") or 0)
        cost = b.data.get("cost_usd")
        if cost is None:
            s.unpriced += 1
        else:
            s.cost_usd += float(cost)
    return out


def cost_lines(blocks: list[Block]) -> list[str]:
    summary = cost_summary(blocks)
    if not summary:
        return ["no finished calls yet"]
    lines = []
    total = StepCost()
    for name, s in summary.items():
        note = f" ({s.unpriced} unpriced)" if s.unpriced else ""
        lines.append(f"{name}: {s.calls} calls · {s.prompt_tokens} in · {s.completion_tokens} out"
                     f" · {s.cached_tokens} cached · ${s.cost_usd:.6f}{note}")
        total.calls += s.calls
        total.prompt_tokens += s.prompt_tokens
        total.completion_tokens += s.completion_tokens
        total.cached_tokens += s.cached_tokens
        total.cost_usd += s.cost_usd
    lines.append(f"total: {total.calls} calls · {total.prompt_tokens} in · "
                 f"{total.completion_tokens} out · {total.cached_tokens} cached · "
                 f"${total.cost_usd:.6f}")
    return lines
