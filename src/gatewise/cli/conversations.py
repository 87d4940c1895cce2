"""`gatewise conversations list | show | delete`: conversations kept by conversation memory,
from the command line over the configured stores (no server), like the other admin commands.

Conversations belong to a team (a key's team, `default` for keys without one and for the
master key); `--team` says whose, exactly as `/v1/conversations` scopes them to the caller.
`delete` removes the turns, the summary and the conversation's PII vault entries.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any


def add_parsers(sub: Any) -> None:
    c = sub.add_parser("conversations", help="kept conversations: list, show, delete")
    cs = c.add_subparsers(dest="action", required=True)
    ls = cs.add_parser("list", help="a team's conversations, most recently updated first")
    ls.add_argument("--limit", type=int, default=50)
    sh = cs.add_parser("show", help="one conversation's stored messages (and its summary)")
    sh.add_argument("conversation")
    sh.add_argument("--json", action="store_true", help="print the whole record as JSON")
    d = cs.add_parser("delete", help="delete a conversation, its summary and its PII vault")
    d.add_argument("conversation")
    for p in (ls, sh, d):
        p.add_argument("--team", default="default",
                       help="the owning team (default: `default`, keys without a team)")
        p.add_argument("--config", "-c")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


async def run(args: argparse.Namespace) -> int:
    from gatewise.gateway import Gateway
    from gatewise.pipeline.core import Identity

    if args.action == "list" and not 1 <= args.limit <= 1000:
        print("error: --limit: from 1 to 1000", file=sys.stderr)
        return 2
    gw = Gateway(args.config)
    who = Identity(tenant=args.team, team=None if args.team == "default" else args.team)
    try:
        memory = gw.conversations
        if args.action == "list":
            for info in await memory.list(identity=who, limit=args.limit):
                summary = f" summarised={info.summarised}" if info.summarised else ""
                print(f"{info.id}  updated={_when(info.updated)} messages={info.turns}{summary}")
            return 0
        if args.action == "delete":
            await memory.delete(args.conversation, identity=who)
            print(f"deleted {args.conversation}")
            return 0
        conv = await memory.get(args.conversation, identity=who)
        if args.json:
            print(json.dumps({"id": conv.info.id, "created": conv.info.created,
                              "updated": conv.info.updated, "summary": conv.info.summary,
                              "summarised": conv.info.summarised,
                              "metadata": conv.info.metadata, "messages": conv.messages},
                             indent=2, ensure_ascii=False, default=str))
            return 0
        if conv.info.summary:
            print(f"[summary of the first {conv.info.summarised} messages] {conv.info.summary}")
        for m in conv.messages:
            content = m.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            calls = m.get("tool_calls")
            if calls:
                text = f"{text or ''} tool_calls={json.dumps(calls)}".strip()
            print(f"{m.get('role', '?')}: {text}")
        return 0
    finally:
        await gw.aclose()
