"""`/admin/maintenance`: what this replica's maintenance jobs did last (runs, skips, errors,
the last summary), and a job run on demand (admins only).

The scheduler's state lives in the replica that answers: a job another replica ran shows as
`skipped` here (it holds the lease). Running a job on demand takes the same lease as the
scheduled runs, so an on-demand run never overlaps another replica's."""

from __future__ import annotations

from typing import Any

from gatewise.errors import MaintenanceJobNotFoundError
from gatewise.security.rbac import require
from gatewise.server.context import RequestContext
from gatewise.server.routes.admin.common import AdminRoute, Args, View, send_json

_ROW: dict[str, dict[str, Any]] = {
    "job": {"type": "string"}, "interval_s": {"type": "number"},
    "exclusive": {"type": "boolean"}, "runs": {"type": "integer", "minimum": 0},
    "skipped": {"type": "integer", "minimum": 0}, "errors": {"type": "integer", "minimum": 0},
    "last_outcome": {"type": ["string", "null"], "enum": ["ok", "error", "skipped", None]},
    "last_run": {"type": ["number", "null"]}, "summary": {"type": "object"},
}


async def list_jobs(ctx: RequestContext, a: Args) -> None:
    """Every maintenance job of the replica that answers, with its counts and last outcome."""
    require(ctx.identity, "admin:*")
    scheduler = ctx.gateway.maintenance
    await send_json(ctx, {"object": "list", "holder": scheduler.holder,
                          "running": scheduler.running, "data": scheduler.status()})


async def run_job(ctx: RequestContext, a: Args) -> None:
    """Run one job now, under its lease (`skipped` when another replica holds it)."""
    require(ctx.identity, "admin:*")
    scheduler = ctx.gateway.maintenance
    name = a.path["job"]
    if name not in scheduler.jobs:
        raise MaintenanceJobNotFoundError(f"no maintenance job named {name!r}", param="job")
    outcome = await scheduler.run_once(name)
    row = next(r for r in scheduler.status() if r["job"] == name)
    await send_json(ctx, {"job": name, "outcome": outcome, "summary": row["summary"]})


ROUTES = [
    AdminRoute("GET", "/admin/maintenance", "admin:*", list_jobs,
               View(extra=_ROW, listed=True,
                    list_extra={"holder": {"type": "string"}, "running": {"type": "boolean"}})),
    AdminRoute("POST", "/admin/maintenance/{job}/run", "admin:*", run_job,
               View(extra={"job": {"type": "string"},
                           "outcome": {"type": "string", "enum": ["ok", "error", "skipped"]},
                           "summary": {"type": "object"}})),
]
