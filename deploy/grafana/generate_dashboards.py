"""Writes the Grafana dashboards in `dashboards/` from the panel lists below.

The JSON files are what Grafana provisions; this script is how they are edited: a panel is one
line here instead of sixty lines of JSON, ids and the grid are computed, and every panel gets
the same datasource variable. `python deploy/grafana/generate_dashboards.py` rewrites them;
`--check` exits 1 when a committed file differs from what it would write (tests/deploy runs
that, and checks every query's metric names against the gateway's).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


@dataclass
class Panel:
    title: str
    exprs: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # timeseries, stat, bargauge, state-timeline, table
    description: str = ""
    width: int = 12
    height: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    title: str
    panels: list[Panel]


def stat(title: str, expr: str, unit: str = "short", description: str = "",
         thresholds: list[tuple[float | None, str]] | None = None) -> Panel:
    defaults: dict[str, Any] = {}
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": [
            {"color": color, "value": value} for value, color in thresholds]}
        defaults["color"] = {"mode": "thresholds"}
    return Panel(title, [(expr, "")], unit=unit, kind="stat", description=description,
                 width=4, height=4, options={"reduceOptions": {"calcs": ["lastNotNull"]},
                                             "colorMode": "background" if thresholds else "value"},
                 defaults=defaults)


def up_down(title: str, expr: str, legend: str, description: str = "") -> Panel:
    """A state timeline of a 0/1 (or 0/1/2) gauge, colored by value."""
    return Panel(title, [(expr, legend)], kind="state-timeline", description=description,
                 defaults={"color": {"mode": "thresholds"},
                           "thresholds": {"mode": "absolute", "steps": [
                               {"color": "red", "value": None}, {"color": "green", "value": 1}]}})


def variable(name: str, query: str, label: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"var-{name}"}, "definition": query,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1}


DATASOURCE_VAR = {"name": "datasource", "label": "Prometheus", "type": "datasource",
                  "query": "prometheus", "current": {}, "hide": 0, "refresh": 1}
INSTANCE_VAR = variable("instance", 'label_values(up{job="gatewise"}, instance)', "Replica")
INST = 'instance=~"$instance"'


def overview() -> list[Row]:
    return [
        Row("Now", [
            stat("Requests / s", f"sum(rate(gatewise_requests_total{{{INST}}}[{RATE}]))", "reqps"),
            stat("5xx ratio", f'sum(rate(gatewise_requests_total{{status=~"5..",{INST}}}[{RATE}])) '
                 f"/ sum(rate(gatewise_requests_total{{{INST}}}[{RATE}]))", "percentunit",
                 "Alert GatewiseHighErrorRate: above 1 % for 5 minutes.",
                 [(None, "green"), (0.01, "red")]),
            stat("p95 latency", "histogram_quantile(0.95, sum by (le) (rate("
                 f"gatewise_request_duration_seconds_bucket{{{INST}}}[{RATE}])))", "s",
                 "Alert GatewiseHighLatency: above 1.5 s for 5 minutes.",
                 [(None, "green"), (1.5, "orange")]),
            stat("Spend, last 24 h", f"sum(increase(gatewise_cost_usd_total{{{INST}}}[24h]))",
                 "currencyUSD"),
            stat("Replicas up", 'sum(up{job="gatewise"})', "short",
                 thresholds=[(None, "red"), (1, "green")]),
            stat("In flight", f"sum(gatewise_requests_in_flight{{{INST}}})"),
        ]),
        Row("Traffic", [
            Panel("Requests by status", [(
                f"sum by (status) (rate(gatewise_requests_total{{{INST}}}[{RATE}]))", "{{status}}")],
                "reqps"),
            Panel("Latency", [
                (f"histogram_quantile({q}, sum by (le) (rate("
                 f"gatewise_request_duration_seconds_bucket{{{INST}}}[{RATE}])))", f"p{int(q * 100)}")
                for q in (0.5, 0.95, 0.99)], "s"),
            Panel("Gateway overhead (total minus upstream)", [
                (f"histogram_quantile({q}, sum by (le) (rate("
                 f"gatewise_overhead_seconds_bucket{{{INST}}}[{RATE}])))", f"p{int(q * 100)}")
                for q in (0.5, 0.99)], "s"),
            Panel("Tokens / s", [(
                f"sum by (direction) (rate(gatewise_tokens_total{{{INST}}}[{RATE}]))",
                "{{direction}}")], "short"),
        ]),
        Row("Health", [
            up_down("Components", f"min by (kind, component) (gatewise_component_up{{{INST}}})",
                    "{{kind}} {{component}}", "1 up, 0 down, from the health checks behind "
                    "/readyz (the worst replica)."),
            Panel("Incidents", [(
                f"sum by (kind) (increase(gatewise_incidents_total{{{INST}}}[{RATE}]))", "{{kind}}")],
                "short", kind="timeseries", description="Failovers, breaker transitions, "
                "spent retry budgets, escalations."),
            Panel("Maintenance runs", [(
                f"sum by (job_name, outcome) (increase(gatewise_maintenance_runs_total{{{INST}}}"
                f"[{RATE}]))", "{{job_name}} {{outcome}}")], "short"),
            Panel("Versions", [(
                f"count by (version) (gatewise_build_info{{{INST}}})", "{{version}}")], "short",
                kind="bargauge", description="Replicas per version (a rollout in progress "
                "shows two)."),
        ]),
    ]


def teams() -> list[Row]:
    t = 'team=~"$team"'
    return [
        Row("Spend", [
            Panel("Spend by team (USD / hour)", [(
                f"sum by (team) (rate(gatewise_team_cost_usd_total{{{t}}}[{RATE}])) * 3600",
                "{{team}}")], "currencyUSD",
                description="Alert GatewiseTeamHourlySpendHigh: above 20 USD in an hour."),
            Panel("Spend by team over the range", [(
                f"sort_desc(sum by (team) (increase(gatewise_team_cost_usd_total{{{t}}}"
                "[$__range])))", "{{team}}")], "currencyUSD", kind="bargauge"),
            Panel("Spend by alias over the range", [(
                "sort_desc(sum by (model) (increase(gatewise_cost_usd_total[$__range])))",
                "{{model}}")], "currencyUSD", kind="bargauge"),
            Panel("Total spend (USD / hour)", [(
                f"sum(rate(gatewise_cost_usd_total[{RATE}])) * 3600", "all")], "currencyUSD",
                description="Alert GatewiseHourlySpendHigh: above 50 USD in an hour."),
        ]),
        Row("Tokens", [
            Panel("Tokens / s by team", [(
                f"sum by (team, direction) (rate(gatewise_team_tokens_total{{{t}}}[{RATE}]))",
                "{{team}} {{direction}}")], "short"),
            Panel("Tokens by team over the range", [(
                f"sort_desc(sum by (team) (increase(gatewise_team_tokens_total{{{t}}}"
                "[$__range])))", "{{team}}")], "short", kind="bargauge"),
        ]),
        Row("Budgets and limits", [
            Panel("Budget used", [(
                "max by (scope, subject, period) (gatewise_budget_used_ratio)",
                "{{scope}} {{subject}} ({{period}})")], "percentunit", kind="bargauge",
                description="Alert GatewiseBudgetBurnRate: projected past 100 % before the "
                "period ends.", defaults={"min": 0, "max": 1}),
            Panel("Budget remaining", [(
                "min by (scope, subject, period) (gatewise_budget_remaining_usd)",
                "{{scope}} {{subject}} ({{period}})")], "currencyUSD", kind="bargauge"),
            Panel("Budget thresholds crossed", [(
                "sum by (scope, period, threshold) (increase(gatewise_budget_alerts_total"
                "[$__range]))", "{{scope}} {{period}} {{threshold}}")], "short", kind="bargauge"),
            Panel("Rate-limit rejections / s", [(
                f"sum by (scope) (rate(gatewise_rate_limit_rejections_total[{RATE}]))",
                "{{scope}}")], "reqps"),
        ]),
    ]


def providers() -> list[Row]:
    d = 'deployment=~"$deployment"'
    return [
        Row("Traffic and errors", [
            Panel("Requests / s by deployment", [(
                f"sum by (deployment) (rate(gatewise_requests_total{{{d}}}[{RATE}]))",
                "{{deployment}}")], "reqps"),
            Panel("5xx ratio by deployment", [(
                f'sum by (deployment) (rate(gatewise_requests_total{{status=~"5..",{d}}}[{RATE}]))'
                f" / sum by (deployment) (rate(gatewise_requests_total{{{d}}}[{RATE}]))",
                "{{deployment}}")], "percentunit"),
            Panel("Errors by alias and type", [(
                f"sum by (model, error_type) (rate(gatewise_errors_total[{RATE}]))",
                "{{model}} {{error_type}}")], "reqps"),
            Panel("Retries by deployment and error", [(
                f"sum by (deployment, error_type) (rate(gatewise_retries_total{{{d}}}[{RATE}]))",
                "{{deployment}} {{error_type}}")], "reqps"),
        ]),
        Row("Latency", [
            Panel("Latency p95 by deployment", [(
                "histogram_quantile(0.95, sum by (le, deployment) (rate("
                f"gatewise_request_duration_seconds_bucket{{{d}}}[{RATE}])))", "{{deployment}}")],
                "s"),
            Panel("Time to first token by deployment", [
                (f"histogram_quantile({q}, sum by (le, deployment) (rate("
                 f"gatewise_time_to_first_token_seconds_bucket{{{d}}}[{RATE}])))",
                 f"{{{{deployment}}}} p{int(q * 100)}") for q in (0.5, 0.95)], "s"),
            Panel("Health probe duration p95", [(
                "histogram_quantile(0.95, sum by (le, kind) (rate("
                f"gatewise_health_check_duration_seconds_bucket[{RATE}])))", "{{kind}}")], "s"),
            Panel("Hedged requests", [(
                f"sum by (outcome) (rate(gatewise_hedges_total[{RATE}]))", "{{outcome}}")],
                "reqps"),
        ]),
        Row("Availability", [
            up_down("Provider health (every replica's probe)",
                    'max by (component) (gatewise_component_up{kind="provider"})',
                    "{{component}}", "Alert GatewiseProviderDown: 0 for 2 minutes."),
            Panel("Breaker state (0 closed, 1 half-open, 2 open)", [(
                f"max by (deployment) (gatewise_breaker_state{{{d}}})", "{{deployment}}")],
                "short", kind="state-timeline", defaults={
                    "color": {"mode": "thresholds"}, "thresholds": {"mode": "absolute", "steps": [
                        {"color": "green", "value": None}, {"color": "orange", "value": 1},
                        {"color": "red", "value": 2}]}}),
            Panel("Failovers and breaker transitions", [(
                f"sum by (kind, deployment) (increase(gatewise_incidents_total{{{d}}}[{RATE}]))",
                "{{kind}} {{deployment}}")], "short"),
            Panel("Breaker recovery time p50", [(
                "histogram_quantile(0.5, sum by (le, deployment) (rate("
                f"gatewise_breaker_recovery_seconds_bucket{{{d}}}[$__range])))",
                "{{deployment}}")], "s", kind="bargauge"),
        ]),
        Row("Credentials", [
            Panel("Credential age (days)", [(
                "max by (credential) (gatewise_credential_age_seconds) / 86400", "{{credential}}")], "d",
                kind="bargauge", description="Alert GatewiseCredentialTooOld: above 97 days.",
                defaults={"thresholds": {"mode": "absolute", "steps": [
                    {"color": "green", "value": None}, {"color": "orange", "value": 90},
                    {"color": "red", "value": 97}]}}),
            Panel("Key rotations", [(
                "sum by (credential, outcome) (increase(gatewise_key_rotations_total"
                "[$__range]))", "{{credential}} {{outcome}}")], "short", kind="bargauge"),
        ]),
    ]


def cache() -> list[Row]:
    m = 'model=~"$model"'
    hits = f'gatewise_cache_requests_total{{result=~"hit|semantic_hit",{m}}}'
    looked = f'gatewise_cache_requests_total{{result!="bypass",{m}}}'
    return [
        Row("Hits", [
            stat("Hit ratio", f"sum(rate({hits}[{RATE}])) / sum(rate({looked}[{RATE}]))",
                 "percentunit"),
            stat("Saved over the range",
                 f"sum(increase(gatewise_cache_saved_usd_total{{{m}}}[$__range]))",
                 "currencyUSD"),
            stat("Tokens saved over the range",
                 f"sum(increase(gatewise_cache_tokens_saved_total{{{m}}}[$__range]))"),
            Panel("Hit ratio by alias", [(
                f"sum by (model) (rate({hits}[{RATE}])) / sum by (model) (rate({looked}[{RATE}]))",
                "{{model}}")], "percentunit", description="Alert GatewiseCacheHitRateCollapse: "
                "under half the alias's own level of the previous 6 hours.",
                defaults={"min": 0, "max": 1}),
            Panel("Lookups by result", [(
                f"sum by (result) (rate(gatewise_cache_requests_total{{{m}}}[{RATE}]))",
                "{{result}}")], "reqps"),
        ]),
        Row("Savings and evictions", [
            Panel("Tokens saved / s by alias", [(
                f"sum by (model) (rate(gatewise_cache_tokens_saved_total{{{m}}}[{RATE}]))",
                "{{model}}")], "short"),
            Panel("USD saved / hour by alias", [(
                f"sum by (model) (rate(gatewise_cache_saved_usd_total{{{m}}}[{RATE}])) * 3600",
                "{{model}}")], "currencyUSD"),
            Panel("Evictions by reason", [(
                f"sum by (reason) (rate(gatewise_cache_evictions_total[{RATE}]))",
                "{{reason}}")], "short"),
        ]),
    ]


def guardrails() -> list[Row]:
    return [
        Row("Decisions", [
            Panel("Guard decisions / s", [(
                f"sum by (guard, action) (rate(gatewise_guard_decisions_total[{RATE}]))",
                "{{guard}} {{action}}")], "reqps"),
            Panel("Blocked over the range, by guard", [(
                'sort_desc(sum by (guard) (increase(gatewise_guard_decisions_total{action="block"}'
                "[$__range])))", "{{guard}}")], "short", kind="bargauge"),
            Panel("Security events / s", [(
                f"sum by (kind, action) (rate(gatewise_security_events_total[{RATE}]))",
                "{{kind}} {{action}}")], "reqps",
                description="Guardrail decisions, denied keys and other security events."),
            Panel("Refused requests by status (4xx)", [(
                f'sum by (status) (rate(gatewise_requests_total{{status=~"4.."}}[{RATE}]))',
                "{{status}}")], "reqps", description="400 invalid, 401 unknown key, 402 "
                "budget, 403 forbidden or blocked, 429 rate limit."),
        ]),
    ]


def quality() -> list[Row]:
    a = 'alias=~"$alias"'
    return [
        Row("Scores", [
            Panel("Mean score against baseline", [
                (f"max by (alias, metric) (gatewise_quality_score_mean{{{a}}})",
                 "{{alias}} {{metric}}"),
                (f"max by (alias, metric) (gatewise_quality_score_baseline{{{a}}})",
                 "{{alias}} {{metric}} baseline")], "percentunit",
                description="The mean over quality.window_s against the alias's own baseline.",
                defaults={"min": 0, "max": 1}),
            up_down("Degraded", f"1 - max by (alias, metric) (gatewise_quality_degraded{{{a}}})",
                    "{{alias}} {{metric}}", "Red while GatewiseQualityDegraded holds "
                    "(1 = fine, 0 = degraded)."),
            Panel("Mean score per response (from the histogram)", [(
                f"sum by (alias, metric) (rate(gatewise_quality_score_sum{{{a}}}[{RATE}])) / "
                f"sum by (alias, metric) (rate(gatewise_quality_score_count{{{a}}}[{RATE}]))",
                "{{alias}} {{metric}}")], "percentunit", defaults={"min": 0, "max": 1}),
            Panel("Score p10", [(
                "histogram_quantile(0.1, sum by (le, alias, metric) (rate("
                f"gatewise_quality_score_bucket{{{a}}}[{RATE}])))", "{{alias}} {{metric}}")],
                "percentunit", description="The worst tenth of responses scores below this."),
        ]),
        Row("Feedback and experiments", [
            Panel("User feedback over the range", [(
                f"sum by (alias, sentiment) (increase(gatewise_feedback_total{{{a}}}[$__range]))",
                "{{alias}} {{sentiment}}")], "short", kind="bargauge"),
            Panel("Experiment requests / s by variant", [(
                "sum by (experiment, variant) (rate(gatewise_experiment_requests_total"
                f"[{RATE}]))", "{{experiment}} {{variant}}")], "reqps"),
            Panel("Experiment error ratio by variant", [(
                "sum by (experiment, variant) (rate(gatewise_experiment_requests_total"
                f'{{status!="200"}}[{RATE}])) / sum by (experiment, variant) '
                f"(rate(gatewise_experiment_requests_total[{RATE}]))",
                "{{experiment}} {{variant}}")], "percentunit"),
        ]),
    ]


DASHBOARDS: dict[str, tuple[str, Any, list[dict[str, Any]]]] = {
    "overview": ("Overview", overview, [INSTANCE_VAR]),
    "teams": ("Cost and tokens per team", teams,
              [variable("team", "label_values(gatewise_team_cost_usd_total, team)", "Team")]),
    "providers": ("Providers: latency, errors, TTFT", providers,
                  [variable("deployment", "label_values(gatewise_requests_total, deployment)",
                            "Deployment")]),
    "cache": ("Cache", cache,
              [variable("model", "label_values(gatewise_cache_requests_total, model)", "Alias")]),
    "guardrails": ("Guardrails", guardrails, []),
    "quality": ("Quality", quality,
                [variable("alias", "label_values(gatewise_quality_score_mean, alias)", "Alias")]),
}


def _panel_json(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr,
                "legendFormat": legend or "__auto", "range": True}
               for i, (expr, legend) in enumerate(p.exprs)]
    out: dict[str, Any] = {
        "id": pid, "type": p.kind, "title": p.title, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": p.width, "h": p.height},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": p.unit, **p.defaults}, "overrides": []},
        "options": p.options,
    }
    if p.description:
        out["description"] = p.description
    return out


def build(slug: str) -> dict[str, Any]:
    title, rows_of, variables = DASHBOARDS[slug]
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row in rows_of():
        panels.append({"id": pid, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})
        pid, y, x, line_h = pid + 1, y + 1, 0, 0
        for p in row.panels:
            if x + p.width > 24:
                x, y, line_h = 0, y + line_h, 0
            panels.append(_panel_json(p, pid, x, y))
            pid, x, line_h = pid + 1, x + p.width, max(line_h, p.height)
        y += line_h
    return {
        "uid": f"gatewise-{slug}", "title": f"gatewise / {title}", "tags": ["gatewise"],
        "timezone": "utc", "schemaVersion": 39, "version": 1, "editable": True,
        "graphTooltip": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [DATASOURCE_VAR, *variables]},
        "annotations": {"list": []}, "links": [
            {"title": "gatewise dashboards", "type": "dashboards", "tags": ["gatewise"],
             "asDropdown": True}],
        "panels": panels,
    }


def render(slug: str) -> str:
    return json.dumps(build(slug), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for slug in DASHBOARDS:
        path = OUT / f"{slug}.json"
        text = render(slug)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date (run {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
