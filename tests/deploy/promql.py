"""What the deploy tests need to know about PromQL and the shipped files: the metric names and
label matchers a query uses, the names the gateway exports, and where deploy/ lives.

Not a PromQL parser: promtool parses (the tests feed it every query). This only finds the
selectors, which is enough to say "this query names a metric the gateway does not export".
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gatewise.observability.metrics import Counter, GatewayMetrics, Gauge, Histogram

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"

# Prometheus' own series about a scrape target: rules may use them, the gateway does not export them.
SCRAPE_SERIES = {"up": ("job", "instance")}
TARGET_LABELS = ("job", "instance")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "atan2", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?(\s*\()?")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*\"")
_COMMENT = re.compile(r"#[^\n]*")


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: tuple[str, ...]


def selectors(expr: str) -> list[Selector]:
    """Every `metric{label=...}` in `expr` (function names, keywords, grouping labels and
    string contents left out)."""
    # Matchers keep their label names; only the quoted values go.
    text = _COMMENT.sub("", expr)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    out = []
    for m in _IDENT.finditer(_STRING.sub('""', text)):
        name, braces, call = m.group(1), m.group(2), m.group(3)
        if call and not braces:
            continue  # a function
        if name in KEYWORDS:
            continue
        labels = tuple(lm.group(1) for lm in _MATCHER.finditer(braces or ""))
        out.append(Selector(name, labels))
    # `{__name__="..."}` alone would escape the check; the shipped files never do it.
    if re.search(r"(?<![\w:])\{", _STRING.sub('""', text)):
        out.append(Selector("{bare selector}", ()))
    return out


def exported() -> dict[str, tuple[str, ...]]:
    """Series name -> the labels it carries, for every metric the gateway can export."""
    names: dict[str, tuple[str, ...]] = {}
    for fam in GatewayMetrics().families():
        labels = (*fam.label_names, *TARGET_LABELS)
        if isinstance(fam, Histogram):
            names[f"{fam.name}_bucket"] = (*labels, "le")
            names[f"{fam.name}_sum"] = labels
            names[f"{fam.name}_count"] = labels
        else:
            assert isinstance(fam, Counter | Gauge)
            names[fam.name] = labels
    return names


def unknown_names(expr: str, known: dict[str, tuple[str, ...]]) -> list[str]:
    """Problems with `expr`: a metric nobody exports, or a label it does not carry."""
    problems = []
    for sel in selectors(expr):
        if sel.metric not in known:
            problems.append(f"unknown metric {sel.metric}")
            continue
        for label in sel.labels:
            if label != "__name__" and label not in known[sel.metric]:
                problems.append(f"{sel.metric} has no label {label}")
    return problems


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return groups


def recorded_names() -> dict[str, tuple[str, ...]]:
    """Series the recording rules produce: dashboards may use them like exported ones (labels
    unchecked: their `by` clause decides them)."""
    out: dict[str, tuple[str, ...]] = {}
    for g in rule_groups():
        for r in g["rules"]:
            if "record" in r:
                out[r["record"]] = ("model", "team", *TARGET_LABELS)
    return out


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # panels inside collapsed rows
    return out


_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def grafana_to_promql(expr: str) -> str:
    """A dashboard query as Prometheus would get it: Grafana's interval variables become
    durations, template variables a match-all regex."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    expr = expr.replace("$__range", "6h")
    return _VARIABLE.sub(".*", expr)


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) for every panel target and query variable."""
    out = []
    for name, board in dashboards().items():
        for p in panels(board):
            for t in p.get("targets", []):
                out.append((name, p.get("title", "?"), grafana_to_promql(t["expr"])))
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
                assert m, f"{name}: variable {var['name']} is not label_values(selector, label)"
                out.append((name, f"variable {var['name']}", grafana_to_promql(m.group(1))))
    return out


def promtool() -> str | None:
    return shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)


def prometheus_bin() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
