"""`/admin/prompts`: prompt templates, every version kept. Publishing a name adds its next
version (the store numbers them); a name the config defines is read-only here (409). Reading
needs `prompts:read`, publishing and deleting `prompts:manage` (admins hold both); templates
belong to no team. Every change is audited."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from gatewise.prompts.spec import PromptNotFoundError, PromptSpec
from gatewise.security.inputs import PromptCreate
from gatewise.security.rbac import require
from gatewise.server.context import RequestContext
from gatewise.server.routes.admin.common import AdminRoute, Args, View, actor_of, send_json
from gatewise.storage.prompts import PromptRecord


class AdminPromptNotFound(PromptNotFoundError):
    status = 404


def prompt_view(spec: PromptSpec) -> dict[str, Any]:
    template = msgspec.to_builtins(spec.template)
    template.pop("version", None)
    return {"name": spec.name, "version": spec.version, "spec": template,
            "source": spec.source}


async def create_prompt(ctx: RequestContext, a: Args) -> None:
    """Publish a prompt template: the next version of its name."""
    require(ctx.identity, "prompts:manage")
    body: PromptCreate = a.body
    registry = ctx.gateway.prompts.registry
    fields = {k: v for k, v in msgspec.to_builtins(body).items() if k != "name"}
    template = registry.parse(fields)
    actor = actor_of(ctx.identity)
    spec = await registry.publish(body.name, template, actor=actor, created=time.time())
    await ctx.gateway.security.audit.record(actor, "prompt.publish", body.name,
                                            version=spec.version)
    await send_json(ctx, prompt_view(spec), 201)


async def list_prompts(ctx: RequestContext, a: Args) -> None:
    """The latest version of every template (config and stored)."""
    require(ctx.identity, "prompts:read")
    specs = await ctx.gateway.prompts.registry.latest()
    await send_json(ctx, {"object": "list", "data": [prompt_view(s) for s in specs]})


async def get_prompt(ctx: RequestContext, a: Args) -> None:
    """A template's latest version."""
    require(ctx.identity, "prompts:read")
    await send_json(ctx, prompt_view(await _find(ctx, a.path["prompt"], None)))


async def get_prompt_version(ctx: RequestContext, a: Args) -> None:
    """One version of a template."""
    require(ctx.identity, "prompts:read")
    spec = await _find(ctx, a.path["prompt"], int(a.path["version"]))
    await send_json(ctx, prompt_view(spec))


async def list_prompt_versions(ctx: RequestContext, a: Args) -> None:
    """Every kept version of a template, oldest first."""
    require(ctx.identity, "prompts:read")
    name = a.path["prompt"]
    specs = await ctx.gateway.prompts.registry.versions(name)
    if not specs:
        raise AdminPromptNotFound(f"no prompt '{name}'", param="prompt")
    await send_json(ctx, {"object": "list", "data": [prompt_view(s) for s in specs]})


async def delete_prompt(ctx: RequestContext, a: Args) -> None:
    """Delete every version of a template (409 for one the config defines)."""
    await _delete(ctx, a.path["prompt"], None)


async def delete_prompt_version(ctx: RequestContext, a: Args) -> None:
    """Delete one version of a template (its number is never reused)."""
    await _delete(ctx, a.path["prompt"], int(a.path["version"]))


async def _find(ctx: RequestContext, name: str, version: int | None) -> PromptSpec:
    spec = await ctx.gateway.prompts.get(name, version)
    if spec is None:
        which = name if version is None else f"{name}@{version}"
        raise AdminPromptNotFound(f"no prompt '{which}'", param="prompt")
    return spec


async def _delete(ctx: RequestContext, name: str, version: int | None) -> None:
    require(ctx.identity, "prompts:manage")
    gone = await ctx.gateway.prompts.registry.delete(name, version)
    which = name if version is None else f"{name}@{version}"
    if not gone:
        raise AdminPromptNotFound(f"no prompt '{which}'", param="prompt")
    actor = actor_of(ctx.identity)
    await ctx.gateway.security.audit.record(actor, "prompt.delete", name, version=version,
                                            versions=gone)
    await send_json(ctx, {"id": which, "deleted": gone})


_SOURCE = {"source": {"enum": ["config", "store"],
                      "description": "config: read-only here; store: published through this API"}}
_VIEW = View(PromptRecord, drop=("created", "actor"), extra=_SOURCE)
_DELETED = View(extra={"id": {"type": "string"},
                       "deleted": {"type": "integer", "description": "versions deleted"}})

ROUTES = [
    AdminRoute("POST", "/admin/prompts", "prompts:manage", create_prompt, _VIEW, 201,
               PromptCreate, refusals=(409,)),  # defined in the config
    AdminRoute("GET", "/admin/prompts", "prompts:read", list_prompts,
               View(PromptRecord, drop=("created", "actor"), extra=_SOURCE, listed=True)),
    AdminRoute("GET", "/admin/prompts/{prompt}", "prompts:read", get_prompt, _VIEW),
    AdminRoute("GET", "/admin/prompts/{prompt}/versions", "prompts:read", list_prompt_versions,
               View(PromptRecord, drop=("created", "actor"), extra=_SOURCE, listed=True)),
    AdminRoute("GET", "/admin/prompts/{prompt}/versions/{version}", "prompts:read",
               get_prompt_version, _VIEW),
    AdminRoute("DELETE", "/admin/prompts/{prompt}", "prompts:manage", delete_prompt, _DELETED,
               refusals=(409,)),
    AdminRoute("DELETE", "/admin/prompts/{prompt}/versions/{version}", "prompts:manage",
               delete_prompt_version, _DELETED, refusals=(409,)),
]
