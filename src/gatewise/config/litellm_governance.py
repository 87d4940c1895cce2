"""LiteLLM's `general_settings` and its budgets in config → gatewise's server, storage,
health, alerting and accounting sections.

- `master_key` (a literal or `os.environ/NAME`) → `server.master_key`: every request needs it
  or a virtual key; `database_url` → `storage.database: postgres` (the ledger, keys, teams,
  budgets and audit live there); `completion_model` → `default_model`.
- `background_health_checks` / `health_check_interval` → provider probes and their interval.
- `alerting: ["webhook"]` with LiteLLM's WEBHOOK_URL → the spend-alert webhook (budget
  crossings, posted as JSON). Slack and e-mail alerting have no equivalent: gatewise's alerts
  are JSON posts, log lines and metrics (`deploy/` has the Prometheus rules).
- Budgets: `litellm_settings.max_internal_user_budget` → a budget for every user,
  `default_key_generate_params.max_budget` → one for every key, `default_team_settings[]`
  entries with `max_budget` → one per team, each with `budget_duration` as its period
  (`litellm_common.budget_period`). LiteLLM's whole-proxy `max_budget` has no equivalent:
  gatewise budgets belong to a key, a team or a user.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gatewise.config.litellm_common import Translation, budget_period, duration_s, names_list
from gatewise.config.secrets import resolve_secret

_WHY_GENERAL = {
    "store_model_in_db": "models come from the config file; the admin API manages keys, "
                         "teams and budgets only",
    "max_parallel_requests": "gatewise limits deployments by rpm/tpm, not by requests in "
                             "flight",
    "global_max_parallel_requests": "gatewise has no limit on requests in flight",
    "allowed_routes": "every route is open to any valid key; keys are limited by models and "
                      "permissions",
    "alerting_threshold": "gatewise sends no slow-request alerts; incidents are log lines and "
                          "metrics",
    "alert_types": "gatewise's webhook carries spend alerts only",
    "alert_to_webhook_url": "gatewise's webhook carries spend alerts only; per-alert-type URLs "
                            "are not mapped (set accounting.alert_webhook)",
    "disable_spend_logs": "gatewise always records usage (the ledger backs budgets and "
                          "reports)",
    "disable_error_logs": "gatewise always records failed requests in the ledger",
    "custom_auth": "gatewise authenticates with its master key and virtual keys only",
    "enable_jwt_auth": "gatewise authenticates with its master key and virtual keys only",
    "database_connection_pool_limit": "gatewise sizes its PostgreSQL pool itself",
    "database_connection_timeout": "gatewise sizes its PostgreSQL pool itself",
}
_WHY_ALERTING = {
    "email": "gatewise sends no e-mail",
}
_WHY_SETTINGS = {
    "max_budget": "a budget for the whole proxy has no equivalent: gatewise budgets belong "
                  "to a key, a team or a user",
    "budget_duration": "a budget for the whole proxy has no equivalent: gatewise budgets "
                       "belong to a key, a team or a user",
    "max_end_user_budget": "gatewise budgets belong to keys, teams and the keys' users, not "
                           "to a request's 'user' field",
    "upperbound_key_generate_params": "the admin API applies its own limits to new keys",
    "default_internal_user_params": "gatewise users get no defaults from config",
    "key_generation_settings": "the admin API's permissions decide who creates keys",
}
BUDGET_SETTINGS = frozenset({"max_budget", "budget_duration", "max_internal_user_budget",
                             "internal_user_budget_duration", "max_end_user_budget",
                             "default_key_generate_params", "upperbound_key_generate_params",
                             "default_team_settings", "default_internal_user_params",
                             "key_generation_settings"})


def translate_general(t: Translation, general: Any) -> None:
    if not isinstance(general, dict):
        raise t.error("must be a mapping", "general_settings")
    for key, value in general.items():
        where = f"general_settings.{key}"
        if key == "master_key":
            if value:
                t.section("server")["master_key"] = str(value)
        elif key == "database_url":
            _database(t, value, where)
        elif key == "completion_model":
            t.out["default_model"] = str(value)
        elif key == "background_health_checks":
            t.section("health")["probe_providers"] = bool(value)
        elif key == "health_check_interval":
            t.section("health")["probe_interval_s"] = value
        elif key == "alerting":
            _alerting(t, value, where)
        elif key == "maximum_spend_logs_retention_period":
            seconds = duration_s(value)
            if seconds is None or seconds <= 0:
                raise t.error(f"'{value}' is not a duration (e.g. 30d)", where)
            t.section("accounting")["retention_days"] = max(1, math.ceil(seconds / 86400))
        elif key in ("disable_spend_logs", "disable_error_logs") and not value:
            continue
        elif key in _WHY_GENERAL:
            t.report(where, _WHY_GENERAL[key])
        else:
            t.unsupported(where)


def _database(t: Translation, value: Any, where: str) -> None:
    """PostgreSQL only. LiteLLM (Prisma) names the schema in the URL (`?schema=name`), which
    PostgreSQL drivers do not take: it becomes `storage.postgres_schema`. A URL with no schema
    stays a secret reference until the second phase."""
    raw = str(value or "")
    url = resolve_secret(raw, env=t.env, file=t.file, path=where) or ""
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgres", "postgresql"):
        t.report(where, f"'{parts.scheme}' databases are not supported (PostgreSQL only); "
                 "state stays in SQLite")
        return
    storage = t.section("storage")
    storage["database"] = "postgres"
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = [v for k, v in query if k == "schema"]
    if schema:
        storage["postgres_schema"] = schema[-1]
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        raw = urlunsplit(parts._replace(query=rest))
    storage["postgres_url"] = raw


def _alerting(t: Translation, value: Any, where: str) -> None:
    for name in names_list(value):
        if name == "webhook":
            url = t.env.get("WEBHOOK_URL")
            if url:
                t.section("accounting")["alert_webhook"] = url
            else:
                t.report(where, "'webhook' needs WEBHOOK_URL; no spend alerts are posted")
        elif name == "slack":  # the webhook's JSON carries Slack's `text` (accounting/alerts.py)
            url = t.env.get("SLACK_WEBHOOK_URL")
            if url:
                t.section("accounting").setdefault("alert_webhook", url)
                t.report(where, "'slack': spend alerts are posted to SLACK_WEBHOOK_URL; "
                         "gatewise sends no slow-request or exception alerts")
            else:
                t.report(where, "'slack' needs SLACK_WEBHOOK_URL; no spend alerts are posted")
        else:
            t.report(where, f"'{name}': " + _WHY_ALERTING.get(
                name, "has no gatewise equivalent (alerts are log lines, metrics and the "
                "spend-alert webhook)"))


def translate_budgets(t: Translation, settings: dict[str, Any]) -> None:
    """The budget keys of `litellm_settings` (`BUDGET_SETTINGS`)."""
    for key in ("max_budget", "max_end_user_budget", "upperbound_key_generate_params",
                "default_internal_user_params", "key_generation_settings"):
        if settings.get(key) is not None:
            t.report(f"litellm_settings.{key}", _WHY_SETTINGS[key])
    if settings.get("budget_duration") is not None and settings.get("max_budget") is None:
        t.report("litellm_settings.budget_duration", _WHY_SETTINGS["budget_duration"])
    if settings.get("max_internal_user_budget") is not None:
        _budget(t, "user", "*", settings["max_internal_user_budget"],
                settings.get("internal_user_budget_duration"),
                "litellm_settings.internal_user_budget_duration")
    defaults = settings.get("default_key_generate_params")
    if defaults is not None:
        where = "litellm_settings.default_key_generate_params"
        if not isinstance(defaults, dict):
            raise t.error("must be a mapping", where)
        if defaults.get("max_budget") is not None:
            _budget(t, "key", "*", defaults["max_budget"], defaults.get("budget_duration"),
                    f"{where}.budget_duration")
        rest = sorted(k for k in defaults if k not in ("max_budget", "budget_duration"))
        if rest:
            t.report(where, f"{', '.join(rest)}: gatewise keys get no defaults from config "
                     "(set them when creating a key)")
    teams = settings.get("default_team_settings")
    if teams is not None:
        _teams(t, teams)


def _teams(t: Translation, teams: Any) -> None:
    where = "litellm_settings.default_team_settings"
    if not isinstance(teams, list):
        raise t.error("must be a list of teams", where)
    for i, team in enumerate(teams):
        path = f"{where}[{i}]"
        if not isinstance(team, dict) or not team.get("team_id"):
            raise t.error("each team needs a 'team_id'", path)
        if team.get("max_budget") is not None:
            _budget(t, "team", str(team["team_id"]), team["max_budget"],
                    team.get("budget_duration"), f"{path}.budget_duration")
        rest = sorted(k for k in team if k not in ("team_id", "max_budget", "budget_duration"))
        if rest:
            t.report(f"{path} ({team['team_id']})", f"{', '.join(rest)}: no per-team "
                     "equivalent in gatewise (per-team logging destinations and limits are not "
                     "read from config)")


def _budget(t: Translation, scope: str, subject: str, limit: Any, duration: Any,
            where: str) -> None:
    period, exact = budget_period(duration)
    if not exact:
        t.report(where, f"'{duration}': gatewise budgets reset daily or monthly; kept as a "
                 f"{'daily' if period == 'day' else 'monthly'} budget")
    budgets: list[dict[str, Any]] = t.section("accounting").setdefault("budgets", [])
    budgets.append({"scope": scope, "subject": subject, "period": period, "limit_usd": limit})
