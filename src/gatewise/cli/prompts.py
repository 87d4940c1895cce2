"""`gatewise prompts list | show | versions | publish | render | delete`: prompt templates
from the command line, over the configured stores (no server, no master key), like the other
admin commands.

Templates the config defines are listed and rendered but are read-only here, as in the admin
API; stored ones (published here or through `/admin/prompts`) get a new version per publish.
`render` prints the messages a request naming the template would send, which is how a
template is tried before an alias is bound to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import yaml


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("prompts", help="prompt templates: list, show, publish, render, delete")
    ps = p.add_subparsers(dest="action", required=True)
    ls = ps.add_parser("list", help="the latest version of every template")
    ls.add_argument("--config", "-c")
    sh = ps.add_parser("show", help="one template (latest, or NAME@VERSION)")
    sh.add_argument("ref", metavar="NAME[@VERSION]")
    sh.add_argument("--config", "-c")
    vs = ps.add_parser("versions", help="every kept version of a template")
    vs.add_argument("name")
    vs.add_argument("--config", "-c")
    pu = ps.add_parser("publish", help="publish a template's next version from a YAML/JSON file")
    pu.add_argument("name")
    pu.add_argument("file", type=Path, help="the template's fields (messages, variables, ...)")
    pu.add_argument("--config", "-c")
    r = ps.add_parser("render", help="print the messages a request naming the template sends")
    r.add_argument("ref", metavar="NAME[@VERSION]")
    r.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="a variable (repeatable); VALUE is JSON when it parses, else text")
    r.add_argument("--user", help="the request's user message (default: none)")
    r.add_argument("--model", help="format the messages as this alias's first deployment wants "
                                   "(system role, sections, examples); default: plain")
    r.add_argument("--config", "-c")
    d = ps.add_parser("delete", help="delete a stored template (every version, or NAME@VERSION)")
    d.add_argument("ref", metavar="NAME[@VERSION]")
    d.add_argument("--config", "-c")


def _ref(text: str) -> tuple[str, int | None]:
    name, _, version = text.partition("@")
    if version and not version.isdigit():
        raise ValueError(f"a version is a number: {text!r}")
    return name, int(version) if version else None


def _variables(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--var takes NAME=VALUE, not {pair!r}")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


def _view(spec: Any) -> dict[str, Any]:
    template = msgspec.to_builtins(spec.template)
    template.pop("version", None)
    return {"name": spec.name, "version": spec.version, "source": spec.source,
            "spec": template}


async def run(args: argparse.Namespace) -> int:
    from gatewise.cli.admin import cli_actor
    from gatewise.gateway import Gateway
    from gatewise.prompts.formats import DEFAULT, apply_system_style

    try:
        ref = _ref(args.ref) if hasattr(args, "ref") else None
        variables = _variables(args.var) if args.action == "render" else {}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    gw = Gateway(args.config)
    try:
        prompts = gw.prompts
        registry = prompts.registry
        if args.action == "list":
            for latest in await registry.latest():
                desc = getattr(latest.template, "description", None) or ""
                print(f"{latest.name:<24} v{latest.version:<4} {latest.source:<7} {desc}"
                      .rstrip())
            return 0
        if args.action == "versions":
            specs = await registry.versions(args.name)
            if not specs:
                print(f"error: no prompt {args.name!r}", file=sys.stderr)
                return 1
            for one in specs:
                print(f"{one.name} v{one.version} {one.source}")
            return 0
        if args.action == "publish":
            raw = yaml.safe_load(args.file.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                print(f"error: {args.file} holds no mapping of template fields", file=sys.stderr)
                return 2
            if registry.in_config(args.name):
                print(f"error: prompt {args.name!r} is defined in the config (read-only here)",
                      file=sys.stderr)
                return 1
            made = await registry.publish(args.name, registry.parse(raw), actor=cli_actor(),
                                          created=time.time())
            await gw.security.audit.record(cli_actor(), "prompt.publish", args.name,
                                           version=made.version)
            print(f"published {made.name} v{made.version}")
            return 0
        assert ref is not None
        name, version = ref
        if args.action == "delete":
            if registry.in_config(name):
                print(f"error: prompt {name!r} is defined in the config (read-only here)",
                      file=sys.stderr)
                return 1
            removed = await registry.delete(name, version)
            if not removed:
                print(f"error: no stored prompt {args.ref!r}", file=sys.stderr)
                return 1
            await gw.security.audit.record(cli_actor(), "prompt.delete", name, version=version)
            print(f"deleted {removed} version(s) of {name}")
            return 0
        spec = await prompts.get(name, version)
        if spec is None:
            print(f"error: no prompt {args.ref!r}", file=sys.stderr)
            return 1
        if args.action == "show":
            print(json.dumps(_view(spec), indent=2, sort_keys=True, default=str))
            return 0
        fmt = DEFAULT
        if args.model:
            deps = gw.config.aliases.get(args.model)
            if not deps:
                print(f"error: no model alias {args.model!r}", file=sys.stderr)
                return 1
            fmt = prompts.formats.lookup(deps[0].target.provider, deps[0].target.model)
        messages = [{"role": "user", "content": args.user}] if args.user else None
        rendered = await prompts.render(args.ref, variables, messages=messages)
        out = rendered.prefix(fmt) if messages is None else \
            apply_system_style(rendered.messages(fmt, _as_messages(messages)), fmt.system)
        print(json.dumps([msgspec.to_builtins(m) for m in out], indent=2, ensure_ascii=False))
        return 0
    finally:
        await gw.aclose()


def _as_messages(raw: list[dict[str, Any]]) -> list[Any]:
    from gatewise.types.validation import chat_request_from_dict

    return list(chat_request_from_dict({"model": "-", "messages": raw}).messages)
