"""The admin API's part of the OpenAPI document, generated from the route table it is
dispatched on (`ADMIN_API`), so the document and the server cannot disagree.

Request bodies, query parameters and path parameters are the msgspec types the dispatcher
decodes them with (`gatewise.security.inputs`), ranges and patterns included, plus each body's
rules across fields (`SCHEMA_EXTRA`). Success answers are the storage records a handler sends
(less the fields it hides, plus the ones it adds), under the route's real status (200 or
201); error answers are listed per route with the statuses it can give.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from gatewise.security.inputs import PATH_PARAMS
from gatewise.server.routes.admin import ADMIN_API
from gatewise.server.routes.admin.common import AdminRoute, View

_REF = "#/components/schemas/{name}"
_ERROR_NAMES = {400: "invalid input", 401: "missing or invalid key",
                403: "the key lacks the permission, or the team is not its own",
                404: "no such object", 409: "refused by the current state or configuration",
                413: "body too large", 502: "an upstream service (e.g. a key source) failed"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema: a query value is never JSON null, and its default is stated
    only when it has one."""
    out = dict(schema)
    alts = out.pop("anyOf", None)
    if alts is not None:
        kept = [a for a in alts if a.get("type") != "null"]
        out.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
    if out.get("default", 0) is None:
        del out["default"]
    return out


def _parameters(route: AdminRoute) -> list[dict[str, Any]]:
    params = []
    for seg in route.template.split("/"):
        if seg.startswith("{"):
            name = seg[1:-1]
            params.append({"name": name, "in": "path", "required": True,
                           "schema": msgspec.json.schema(PATH_PARAMS[name])})
    if route.query is not None:
        (_, defs) = msgspec.json.schema_components([route.query])
        spec = defs[route.query.__name__]
        required = set(spec.get("required", []))
        for name, schema in spec["properties"].items():
            schema = _plain(schema)
            param = {"name": name, "in": "query", "required": name in required, "schema": schema}
            if "description" in schema:
                param["description"] = schema["description"]
            params.append(param)
    return params


def _view_schema(view: View, components: dict[str, Any]) -> dict[str, Any]:
    if view.record is None:
        item: dict[str, Any] = {"type": "object", "properties": dict(view.extra),
                                "required": sorted(view.extra)}
    elif not view.drop and not view.extra:
        item = _ref(view.record.__name__)
    else:
        item = copy.deepcopy(components[view.record.__name__])
        item.pop("title", None)
        item.pop("description", None)  # the record's docstring, about fields not shown
        for name in view.drop:
            item["properties"].pop(name, None)
        item["properties"].update(view.extra)
        item["required"] = sorted(
            {*item.get("required", ()), *view.extra} - set(view.drop))
    if not view.listed:
        return item
    return {"type": "object",
            "properties": {"object": {"const": "list"},
                           "data": {"type": "array", "items": item}, **view.list_extra},
            "required": ["object", "data", *view.list_extra]}


def _errors(route: AdminRoute) -> list[int]:
    codes = {401, 403, *route.refusals}
    has_path = "{" in route.template
    if has_path or route.body is not None or route.query is not None:
        codes.add(400)
    if has_path:
        codes.add(404)
    if route.body is not None:
        codes.add(413)
    return sorted(codes)


def admin_openapi(bearer: list[dict[str, list[str]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The admin paths and the component schemas they refer to."""
    bodies = list(dict.fromkeys(r.body for r in ADMIN_API if r.body is not None))
    records = list(dict.fromkeys(r.view.record for r in ADMIN_API if r.view.record is not None))
    _, components = msgspec.json.schema_components([*bodies, *records], ref_template=_REF)
    for body in bodies:
        components[body.__name__].update(copy.deepcopy(body.SCHEMA_EXTRA))
    paths: dict[str, Any] = {}
    for route in ADMIN_API:
        name = route.handler.__name__
        summary = " ".join((route.handler.__doc__ or name.replace("_", " ")).split())
        content: dict[str, Any] = {
            "application/json": {"schema": _view_schema(route.view, components)}}
        if route.view.csv:
            content["text/csv"] = {"schema": {"type": "string"}}
        op: dict[str, Any] = {
            "operationId": name.replace("_", " ").title().replace(" ", ""),
            "summary": summary,
            "tags": ["admin"], "security": bearer, "x-permission": route.permission,
            "responses": {
                str(route.status): {"description": "Created" if route.status == 201 else "OK",
                                    "content": content},
                **{str(c): {"description": f"OpenAI-shaped error: {_ERROR_NAMES[c]}",
                            "content": {"application/json": {"schema": _ref("Error")}}}
                   for c in _errors(route)}}}
        params = _parameters(route)
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": bool(components[route.body.__name__].get("required")),
                "content": {"application/json": {"schema": _ref(route.body.__name__)}}}
        paths.setdefault(route.template, {})[route.method.lower()] = op
    return paths, components
