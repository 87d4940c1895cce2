"""The admin API: keys, teams, budgets, usage, audit, provider credentials, retention and the
response cache, one module per resource, each calling the gateway's one `AdminService`
(`ctx.gateway.admin`), or the cache's own (`ctx.gateway.cache`).

Every route is one `AdminRoute` in `ADMIN_API`: the permission it needs (the auth-matrix tests
are generated from that table, so a route cannot be added without a permission), the types
of its body and query string (`gatewise.security.inputs`, shared with the CLI), its success
status and the shape of its answer. The dispatcher checks the path parameters, the query
string and the body against those types before the handler runs, so a hostile value is a
400 naming the field and never reaches a store; the OpenAPI document is generated from the
same table (`gatewise.server.openapi_admin`). Team admins and viewers are confined to their
own team: a `team` in the request that is not theirs is a 403. Secrets appear in exactly two
responses (a key's create and rotate) and nowhere else.
"""

from __future__ import annotations

from gatewise.security.inputs import check_path, decode_input, parse_query
from gatewise.server.context import RequestContext
from gatewise.server.http import read_body
from gatewise.server.routes.admin import (
    audit,
    budgets,
    cache,
    credentials,
    experiments,
    keys,
    live,
    maintenance,
    prompts,
    retention,
    teams,
    usage,
)
from gatewise.server.routes.admin.common import (
    AdminHandler,
    AdminRoute,
    Args,
    RouteHandler,
    query_params,
)

__all__ = ["ADMIN_API", "ADMIN_ROUTES", "match_admin"]

# In the OpenAPI document's order.
ADMIN_API: list[AdminRoute] = [*keys.ROUTES, *teams.ROUTES, *budgets.ROUTES, *usage.ROUTES,
                               *audit.ROUTES, *credentials.ROUTES, *retention.ROUTES,
                               *cache.ROUTES, *prompts.ROUTES, *experiments.ROUTES,
                               *live.ROUTES, *maintenance.ROUTES]

# (method, path template, the permission it needs, handler): the table's short form.
ADMIN_ROUTES: list[tuple[str, str, str, RouteHandler]] = [
    (r.method, r.template, r.permission, r.handler) for r in ADMIN_API]


def _dispatcher(route: AdminRoute) -> AdminHandler:
    """Checks the path parameters, then the query string, then the body, and only then runs
    the handler: a refused input touches no store and writes no audit record."""

    async def dispatch(ctx: RequestContext, params: dict[str, str]) -> None:
        check_path(params)
        query = parse_query(route.query, query_params(ctx)) if route.query else None
        body = None
        if route.body is not None:
            body = decode_input(route.body, await read_body(ctx.scope, ctx.receive,
                                                            ctx.max_body))
        await route.handler(ctx, Args(params, body, query))

    return dispatch


def match_admin(method: str, path: str) -> tuple[AdminHandler, dict[str, str], str] | bool | None:
    """The handler, path parameters and permission; False when the path exists under another
    method. The server checks the permission before the handler reads the body, so an
    unauthorised caller learns nothing from validation errors."""
    parts = path.rstrip("/").split("/")
    other_method = False
    for route in ADMIN_API:
        tparts = route.template.split("/")
        if len(tparts) != len(parts):
            continue
        params: dict[str, str] = {}
        for t, v in zip(tparts, parts, strict=True):
            if t.startswith("{"):
                if not v:
                    break
                params[t[1:-1]] = v
            elif t != v:
                break
        else:
            if route.method == method:
                return _dispatcher(route), params, route.permission
            other_method = True
    return False if other_method else None
