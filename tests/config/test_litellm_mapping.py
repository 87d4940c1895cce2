"""The finer points of reading LiteLLM settings: how durations become budget periods, how
LiteLLM's OTEL variables pick the exporter, how several guardrails merge, and that bad input
is an error naming the key while anything without an equivalent is one report line."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.config.litellm_common import budget_period
from gatewise.config.litellm_guardrails import DETECTABLE_ENTITIES, NER_ENTITIES
from gatewise.config.loader import parse_config
from gatewise.config.schema import Config
from gatewise.errors import ConfigError
from gatewise.guardrails.pii import engine

MODELS = [{"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k"}}]


def _read(env: dict[str, str] | None = None, **sections: Any) -> tuple[Config, list[str]]:
    return parse_config({"model_list": MODELS, **sections}, "config.yaml", env or {})


def test_the_entity_list_is_the_pii_engines() -> None:
    engine_entities = {*engine.DEFAULT_ENTITIES, *engine.NER_ENTITIES, *engine.OPTIONAL_ENTITIES}
    assert engine_entities == DETECTABLE_ENTITIES
    assert set(engine.NER_ENTITIES) <= NER_ENTITIES <= DETECTABLE_ENTITIES


@pytest.mark.parametrize(("duration", "expected"), [
    (None, ("total", True)), ("1d", ("day", True)), ("24h", ("day", True)),
    ("30d", ("month", True)), ("1mo", ("month", True)), ("7d", ("month", False)),
    ("1h", ("day", False)), ("soon", ("month", False)), (86400, ("day", True)),
])
def test_budget_durations_become_periods(duration: Any, expected: tuple[str, bool]) -> None:
    assert budget_period(duration) == expected


def test_otel_grpc_is_reported_and_traces_use_otlp_http() -> None:
    cfg, warnings = _read({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
                          litellm_settings={"callbacks": ["otel"]})
    t = cfg.observability.tracing
    assert t.enabled and t.exporter == "otlp_http" and t.endpoint is None
    (line,) = warnings
    assert line.startswith("litellm_settings.callbacks (otel): exporter 'grpc'")


def test_otel_without_variables_prints_spans_like_litellm() -> None:
    cfg, warnings = _read(litellm_settings={"success_callback": ["otel"]})
    assert warnings == [] and cfg.observability.tracing.exporter == "console"


def test_an_otel_endpoint_already_naming_the_traces_path_is_kept() -> None:
    cfg, _ = _read({"OTEL_EXPORTER": "otlp_http",
                    "OTEL_ENDPOINT": "https://api.traceloop.com/v1/traces/"},
                   litellm_settings={"callbacks": ["otel"]})
    assert cfg.observability.tracing.endpoint == "https://api.traceloop.com/v1/traces"


def test_otlp_vendors_point_at_the_tracing_endpoint_and_others_say_nothing_is_sent() -> None:
    _, warnings = _read(litellm_settings={"success_callback": ["arize", "langfuse", "langfuse"],
                                          "failure_callback": ["langfuse"]})
    assert len(warnings) == 2
    assert "observability.tracing.endpoint" in warnings[0]
    assert "'langfuse' has no gatewise equivalent" in warnings[1]


def test_message_logging_on_spans_is_opt_in_and_the_off_switch_wins() -> None:
    on, _ = _read(litellm_settings={"callbacks": ["otel"]},
                  callback_settings={"otel": {"message_logging": True}})
    assert on.observability.tracing.capture_content
    off, _ = _read(litellm_settings={"callbacks": ["otel"], "turn_off_message_logging": True},
                   callback_settings={"otel": {"message_logging": True}})
    assert not off.observability.tracing.capture_content


def test_guardrails_merge_and_blocking_wins() -> None:
    guards = [
        {"guardrail_name": "mask", "litellm_params": {
            "guardrail": "presidio", "mode": "pre_call", "default_on": True,
            "pii_entities_config": {"EMAIL_ADDRESS": "MASK", "PERSON": "MASK"}}},
        {"guardrail_name": "block", "litellm_params": {
            "guardrail": "presidio", "mode": ["pre_call", "post_call"], "default_on": True,
            "pii_entities_config": {"EMAIL_ADDRESS": "BLOCK"}}},
        {"guardrail_name": "aporia-pre-guard", "litellm_params": {
            "guardrail": "aporia", "mode": "during_call", "api_key": "os.environ/APORIA"}},
    ]
    cfg, warnings = _read(guardrails=guards)
    pii = cfg.guardrails.default.pii if cfg.guardrails.default else None
    assert pii is not None and pii.entities == {"EMAIL_ADDRESS": "block", "PERSON": "mask"}
    assert pii.ner and pii.detect == ["EMAIL_ADDRESS", "PERSON"]
    assert [w.split(": ", 1)[0] for w in warnings] == ["guardrails[1] (block)",
                                                      "guardrails[2] (aporia-pre-guard)"]
    assert "post_call" in warnings[0] and "no gatewise equivalent" in warnings[1]


def test_a_guard_without_an_entity_list_looks_for_every_type() -> None:
    guards = [{"guardrail_name": n, "litellm_params": {"guardrail": "presidio", "default_on": True,
                                                       **p}}
              for n, p in (("some", {"pii_entities_config": {"CREDIT_CARD": "MASK"}}),
                           ("all", {}))]
    cfg, _ = _read(guardrails=guards)
    assert cfg.guardrails.default is not None and cfg.guardrails.default.pii is not None
    assert cfg.guardrails.default.pii.detect is None


def test_a_logging_only_guardrail_is_not_applied() -> None:
    cfg, warnings = _read(guardrails=[{"guardrail_name": "log", "litellm_params": {
        "guardrail": "presidio", "mode": "logging_only", "default_on": True}}])
    assert cfg.guardrails.default is None
    assert warnings[0].startswith("guardrails[0] (log): mode logging_only")


def test_an_opt_in_guardrail_runs_on_every_request_and_says_so() -> None:
    cfg, warnings = _read(guardrails=[{"guardrail_name": "inj", "litellm_params": {
        "guardrail": "lakera", "mode": "pre_call"}}])
    assert cfg.guardrails.default is not None and cfg.guardrails.default.injection is not None
    assert any("default_on is not set" in w for w in warnings)


def test_presidio_settings_without_the_presidio_callback_are_reported() -> None:
    _, warnings = _read(litellm_settings={"output_parse_pii": True})
    assert warnings == ["litellm_settings.output_parse_pii: applies to the 'presidio' callback, "
                        "which is not configured"]


def test_the_webhook_alert_needs_webhook_url() -> None:
    cfg, warnings = _read(general_settings={"alerting": ["webhook"]})
    assert cfg.accounting.alert_webhook is None
    assert warnings == ["general_settings.alerting: 'webhook' needs WEBHOOK_URL; no spend "
                        "alerts are posted"]


def test_only_postgres_databases_are_used() -> None:
    cfg, warnings = _read(general_settings={"database_url": "mysql://db/litellm"})
    assert cfg.storage.database == "sqlite"
    assert warnings[0].startswith("general_settings.database_url: 'mysql'")


def test_a_database_url_reference_stays_a_reference_until_resolved() -> None:
    cfg, warnings = _read({"DATABASE_URL": "postgresql://u:pw@db/litellm"},
                          general_settings={"database_url": "os.environ/DATABASE_URL",
                                            "maximum_spend_logs_retention_period": "36h",
                                            "completion_model": "gpt"})
    assert warnings == []
    assert cfg.storage.postgres_url == "os.environ/DATABASE_URL"  # the password stays out
    assert cfg.accounting.retention_days == 2 and cfg.default_model == "gpt"


def test_an_unset_environment_reference_is_an_error_naming_the_key() -> None:
    entry = {"model_name": "az", "litellm_params": {"model": "azure/gpt",
                                                    "api_base": "os.environ/AZURE_API_BASE"}}
    with pytest.raises(ConfigError, match="AZURE_API_BASE is not set") as info:
        parse_config({"model_list": [entry]}, "config.yaml", {})
    assert info.value.path == "model_list[0].litellm_params.api_base"


@pytest.mark.parametrize(("sections", "path"), [
    ({"guardrails": {"name": "x"}}, "guardrails"),
    ({"guardrails": [{"guardrail_name": "x"}]}, "guardrails[0]"),
    ({"guardrails": [{"guardrail_name": "x", "litellm_params": {
        "guardrail": "presidio", "default_on": True, "pii_entities_config": {"EMAIL": "HIDE"}}}]},
     "guardrails[0].litellm_params.pii_entities_config.EMAIL"),
    ({"litellm_settings": {"default_team_settings": [{"max_budget": 5}]}},
     "litellm_settings.default_team_settings[0]"),
    ({"general_settings": {"maximum_spend_logs_retention_period": "forever"}},
     "general_settings.maximum_spend_logs_retention_period"),
    ({"router_settings": {"model_group_alias": {"gpt-4": "missing"}}},
     "router_settings.model_group_alias.gpt-4"),
    ({"callback_settings": ["otel"]}, "callback_settings"),
])
def test_malformed_sections_are_errors_naming_the_key(sections: dict[str, Any],
                                                      path: str) -> None:
    with pytest.raises(ConfigError) as info:
        _read(**sections)
    assert info.value.path == path and info.value.file == "config.yaml"


def test_presidio_settings_apply_to_a_presidio_guardrail_in_the_older_list() -> None:
    cfg, warnings = _read(litellm_settings={
        "guardrails": [{"pii_masking": {"callbacks": ["presidio"], "default_on": True}}],
        "presidio_score_thresholds": {"ALL": 0.7}, "output_parse_pii": True})
    assert warnings == []
    assert cfg.guardrails.default is not None and cfg.guardrails.default.pii is not None
    assert cfg.guardrails.default.pii.min_score == 0.7
