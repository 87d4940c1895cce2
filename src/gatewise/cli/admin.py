"""`gatewise keys | teams | budgets | usage | audit`: governance from the command line.

These commands work on the configured stores directly (the same SQLite file or PostgreSQL
database the gateway uses), so they need no running server and no master key: whoever can
read the config and the database is already an administrator. Every change is audited with
the actor `cli:<os user>`.

The flags are checked by the admin API's own types (`gatewise.security.inputs`) before the
stores are opened: `--rpm -5`, a team id with a NUL byte or `--usd -1` are refused here (exit
status 2) exactly as `POST /admin/...` refuses them, and nothing is written.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from gatewise.accounting.build import Accounting
from gatewise.config.loader import ResolvedConfig
from gatewise.errors import InvalidRequestError
from gatewise.security.admin import AdminService
from gatewise.security.build import Security
from gatewise.security.inputs import (
    AuditQuery,
    BudgetCreate,
    KeyCreate,
    KeyRotate,
    KeysQuery,
    TeamCreate,
    UsageQuery,
    check_path,
    parse_input,
)
from gatewise.storage.base import KeyRecord
from gatewise.storage.factory import open_stores
from gatewise.storage.usage import parse_group_by, parse_time, usage_table


def _leaf(sub: Any, name: str, **kw: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, **kw)
    p.add_argument("--config", "-c", help="gatewise.yaml (the stores it names are used)")
    return p


def add_parsers(sub: Any) -> None:
    k = sub.add_parser("keys", help="virtual API keys: create, list, revoke, rotate")
    ks = k.add_subparsers(dest="action", required=True)
    c = _leaf(ks, "create", help="create a key (the secret is printed once)")
    c.add_argument("--name", required=True)
    c.add_argument("--role", default="member", choices=["admin", "team_admin", "member", "viewer"])
    c.add_argument("--team")
    c.add_argument("--user")
    c.add_argument("--models", default="", help="comma-separated allowed models (default: all)")
    c.add_argument("--permissions", default="", help="comma-separated extra permissions")
    c.add_argument("--expires-days", type=float)
    c.add_argument("--rpm", type=int)
    c.add_argument("--tpm", type=int)
    ls = _leaf(ks, "list")
    ls.add_argument("--team")
    r = _leaf(ks, "revoke")
    r.add_argument("key_id")
    ro = _leaf(ks, "rotate", help="new secret; the old one stays valid for --overlap-hours")
    ro.add_argument("key_id")
    ro.add_argument("--overlap-hours", type=float, default=24.0)

    t = sub.add_parser("teams", help="teams: create, list, delete")
    ts = t.add_subparsers(dest="action", required=True)
    tc = _leaf(ts, "create")
    tc.add_argument("team_id")
    tc.add_argument("--name")
    tc.add_argument("--models", default="")
    tc.add_argument("--rpm", type=int)
    tc.add_argument("--tpm", type=int)
    _leaf(ts, "list")
    td = _leaf(ts, "delete")
    td.add_argument("team_id")

    b = sub.add_parser("budgets", help="spending caps per key, team or user")
    bs = b.add_subparsers(dest="action", required=True)
    bc = _leaf(bs, "create")
    bc.add_argument("scope", choices=["key", "team", "user"])
    bc.add_argument("subject")
    bc.add_argument("--period", default="month", choices=["day", "month", "total"])
    bc.add_argument("--usd", type=float)
    bc.add_argument("--tokens", type=int)
    bc.add_argument("--soft", action="store_true", help="alert only, never refuse")
    _leaf(bs, "list")

    u = sub.add_parser("usage", help="usage by team / key / model / day; CSV export")
    u.add_argument("--group-by", default="team,model,day")
    u.add_argument("--since", help="YYYY-MM-DD or ISO time")
    u.add_argument("--until")
    u.add_argument("--team")
    u.add_argument("--key")
    u.add_argument("--csv", action="store_true")

    a = sub.add_parser("audit", help="the tamper-evident audit log")
    as_ = a.add_subparsers(dest="action", required=True)
    _leaf(as_, "verify", help="recompute the hash chain; exit 1 if it was tampered with")
    al = _leaf(as_, "list")
    al.add_argument("--since-seq", type=int, default=0)
    al.add_argument("--limit", type=int, default=50)

    u.add_argument("--config", "-c")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _key_line(k: KeyRecord) -> str:
    state = "revoked" if k.revoked else "expired" if k.expires and k.expires < time.time() \
        else "active"
    return (f"{k.id}  {state:<8} {k.role:<10} team={k.team or '-'} name={k.name} "
            f"models={','.join(k.models) or '*'}")


# The admin API's field names as this CLI's flags, for error messages.
_FLAGS = {"expires_in_s": "--expires-days", "overlap_s": "--overlap-hours", "limit_usd": "--usd",
          "limit_tokens": "--tokens", "since_seq": "--since-seq", "group_by": "--group-by",
          "team_id": "team_id", "key_id": "key_id", "id": "team_id", "key": "--key"}


def _inputs(args: argparse.Namespace) -> Any:
    """The command's flags as the admin API's input types (raises `InvalidRequestError`)."""
    cmd, action = args.command, getattr(args, "action", None)
    if cmd == "keys":
        if action == "create":
            days = args.expires_days
            return parse_input(KeyCreate, {
                "name": args.name, "role": args.role, "team": args.team, "user": args.user,
                "models": _csv(args.models), "permissions": _csv(args.permissions),
                "expires_in_s": None if days is None else days * 86400,
                "rpm": args.rpm, "tpm": args.tpm})
        if action == "list":
            return parse_input(KeysQuery, {"team": args.team})
        check_path({"key_id": args.key_id})
        if action == "rotate":
            return parse_input(KeyRotate, {"overlap_s": args.overlap_hours * 3600})
        return None
    if cmd == "teams":
        if action == "create":
            return parse_input(TeamCreate, {"id": args.team_id, "name": args.name,
                                            "models": _csv(args.models), "rpm": args.rpm,
                                            "tpm": args.tpm})
        if action == "delete":
            check_path({"team_id": args.team_id})
        return None
    if cmd == "budgets" and action == "create":
        return parse_input(BudgetCreate, {"scope": args.scope, "subject": args.subject,
                                          "period": args.period, "limit_usd": args.usd,
                                          "limit_tokens": args.tokens, "hard": not args.soft})
    if cmd == "usage":
        return parse_input(UsageQuery, {"group_by": args.group_by, "since": args.since,
                                        "until": args.until, "team": args.team,
                                        "key": args.key})
    if cmd == "audit" and action == "list":
        return parse_input(AuditQuery, {"since_seq": args.since_seq, "limit": args.limit})
    return None


async def run(args: argparse.Namespace) -> int:
    from gatewise.config.loader import load_config

    try:
        inputs = _inputs(args)
    except InvalidRequestError as exc:
        where = f"{_FLAGS.get(exc.param, '--' + exc.param.replace('_', '-'))}: " \
            if exc.param else ""
        print(f"error: {where}{exc.message}", file=sys.stderr)
        return 2
    async with _admin(load_config(args.config)) as admin:
        return await _dispatch(admin, args, inputs)


def cli_actor() -> str:
    """Who acts when an admin command runs from the CLI (recorded in the audit log)."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return f"cli:uid{os.getuid()}"


@asynccontextmanager
async def _admin(config: ResolvedConfig) -> AsyncIterator[AdminService]:
    """The gateway's admin service over the configured stores, without the rest of a
    gateway: no providers, no chain, nothing started in the background."""
    stores = open_stores(config)
    security, accounting = Security(config, stores), Accounting(config, stores)
    try:
        yield AdminService(security, accounting)
    finally:
        await accounting.aclose()
        await security.aclose()
        await stores.aclose()


async def _dispatch(admin: AdminService, args: argparse.Namespace, inputs: Any) -> int:
    actor = cli_actor()
    cmd, action = args.command, getattr(args, "action", None)
    if cmd == "keys":
        if action == "create":
            body: KeyCreate = inputs
            secret, rec = await admin.create_key(
                name=body.name, role=body.role, team=body.team, user=body.user,
                models=body.models, permissions=body.permissions,
                expires_in_s=body.expires_in_s, rpm=body.rpm, tpm=body.tpm, actor=actor)
            print(secret)
            print(f"# id {rec.id}: store this key now, it is not shown again", file=sys.stderr)
        elif action == "list":
            for k in await admin.list_keys(team=inputs.team):
                print(_key_line(k))
        elif action == "revoke":
            await admin.revoke_key(args.key_id, actor=actor)
            print(f"revoked {args.key_id}")
        elif action == "rotate":
            secret, rec = await admin.rotate_key(args.key_id, actor=actor,
                                                 overlap_s=inputs.overlap_s)
            print(secret)
            print(f"# new id {rec.id}; {args.key_id} stays valid for {args.overlap_hours} h",
                  file=sys.stderr)
        return 0
    if cmd == "teams":
        if action == "create":
            tbody: TeamCreate = inputs
            team = await admin.create_team(tbody.id, name=tbody.name or tbody.id,
                                           models=tbody.models, rpm=tbody.rpm, tpm=tbody.tpm,
                                           actor=actor)
            print(json.dumps(asdict(team)))
        elif action == "list":
            for t in await admin.list_teams():
                print(f"{t.id}  name={t.name} models={','.join(t.models) or '*'} "
                      f"rpm={t.rpm or '-'} tpm={t.tpm or '-'}")
        elif action == "delete":
            await admin.delete_team(args.team_id, actor=actor)
            print(f"deleted {args.team_id}")
        return 0
    if cmd == "budgets":
        if action == "create":
            bbody: BudgetCreate = inputs
            budget = await admin.create_budget(scope=bbody.scope, subject=bbody.subject,
                                               period=bbody.period, limit_usd=bbody.limit_usd,
                                               limit_tokens=bbody.limit_tokens,
                                               hard=bbody.hard, actor=actor)
            print(budget.id)
        else:
            for bud in await admin.list_budgets():
                spent = await admin.budget_spent(bud)
                print(f"{bud.id}  {bud.scope}={bud.subject} {bud.period} "
                      f"usd={bud.limit_usd} tokens={bud.limit_tokens} hard={bud.hard} "
                      f"spent={spent}")
        return 0
    if cmd == "usage":
        return await _usage(admin, inputs, args.csv)
    if cmd == "audit":
        if action == "verify":
            result = await admin.verify_audit()
            print(json.dumps(asdict(result)))
            return 0 if result.ok else 1
        for row in await admin.audit(since_seq=inputs.since_seq, limit=inputs.limit):
            when = datetime.fromtimestamp(row.ts, UTC).isoformat(timespec="seconds")
            print(f"{row.seq:>6} {when} {row.actor:<16} {row.action:<20} {row.target or '-'} "
                  f"{json.dumps(row.detail, sort_keys=True)}")
        return 0
    return 2


async def _usage(admin: AdminService, q: UsageQuery, as_csv: bool) -> int:
    groups = parse_group_by(q.group_by)
    since, until = parse_time(q.since, "since"), parse_time(q.until, "until")
    rows = await admin.usage(groups, since=since, until=until, team=q.team, key_id=q.key)
    table = usage_table(rows, groups, cost_digits=6)
    if as_csv:
        csv.writer(sys.stdout).writerows(table)
        return 0
    widths = [max(len(str(x)) for x in col) for col in zip(*table, strict=True)]
    for row in table:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    return 0
