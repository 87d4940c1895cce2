"""The operations part of the schema: telemetry (traces, logs), health checks, maintenance jobs,
provider-key rotation, quality scoring and A/B experiments.

Kept apart from `schema.py` so the request-path settings and the operator's settings can each
be read on one screen; `Config` holds both.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

_Positive = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
_Ratio = Annotated[float, msgspec.Meta(ge=0, le=1)]


class _Strict(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


# -- telemetry ---------------------------------------------------------------------------------
class TracingConfig(_Strict):
    """OpenTelemetry traces (the `otel` extra). Off by default: then no OpenTelemetry module is
    imported and the chain has no tracing stage at all."""

    enabled: bool = False
    # `otlp_http` (OTLP/protobuf over HTTP, e.g. http://127.0.0.1:4318/v1/traces), `console`
    # (stderr, for a look), `memory` (kept in process: tests and the REPL timeline).
    exporter: Literal["otlp_http", "console", "memory"] = "otlp_http"
    endpoint: str | None = None
    # Sent with every export (e.g. an API key for a hosted collector): secret references.
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    sample_ratio: _Ratio = 1.0
    service_name: str = "gatewise"
    # Prompt and completion text on spans: only when an operator opts in, and then the masked
    # form (after the PII guard), truncated to `max_content_chars`.
    capture_content: bool = False
    max_content_chars: _PositiveInt = 2000
    # Send W3C `traceparent` to upstream providers (the client's trace continues there).
    propagate_upstream: bool = True


class LoggingConfig(_Strict):
    """What `gatewise serve` logs. One line per request at INFO; incidents and security events
    with their fields; never a secret or a raw prompt."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    # One line per request (success and failure) at INFO; `false` keeps only failures.
    requests: bool = True


class ObservabilityConfig(_Strict):
    tracing: TracingConfig = msgspec.field(default_factory=TracingConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)


# -- health and maintenance --------------------------------------------------------------------
class HealthConfig(_Strict):
    """Component checks behind `/readyz`, the `gatewise_component_up` gauge and its alerts."""

    enabled: bool = True
    # Providers are probed with a model list (or the cheapest call that spends nothing),
    # every `probe_interval_s`, backing off to `max_backoff_s` while one stays down.
    probe_providers: bool = True
    probe_interval_s: _Positive = 30.0
    probe_timeout_s: _Positive = 5.0
    max_backoff_s: _Positive = 600.0
    # Stores (Redis, PostgreSQL) pinged this often.
    store_interval_s: _Positive = 15.0
    # A provider counts as down for readiness only when every deployment of some alias is down.
    require_all_aliases: bool = False


class MaintenanceConfig(_Strict):
    """Jobs on a schedule, each run by one replica at a time (a lease in the shared store)."""

    enabled: bool = True
    # Seconds between runs, per job: cache_cleanup, retention_purge, health_report,
    # rotation_check (and any job a component registers). A missing job uses its default.
    intervals: dict[str, _Positive] = msgspec.field(default_factory=dict)
    # A job's lease is held for its interval plus `lease_s` and renewed on every run, so the
    # holder keeps the job; if it dies, another replica takes over `lease_s` after its next
    # run was due (a clean shutdown releases at once). Also the longest a run should take.
    lease_s: _Positive = 120.0


class RotationSourceConfig(_Strict):
    """Where a stored provider credential's next key comes from, and when.

    `command`: argv run without a shell; its stdout (stripped) is the new key.
    `webhook`: POST to `url` (with `headers`, secret references) answering `{"key": "..."}`.
    `openai_admin`: the provider's admin API (`api_base`, with `admin_key` by reference)
    creates a key, and deletes the old one after the overlap window.
    """

    source: Literal["command", "webhook", "openai_admin"]
    command: list[str] | None = None
    url: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    api_base: str | None = None
    admin_key: str | None = None
    # `openai_admin`: the project whose service accounts hold the keys (`proj_...`).
    project_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]{1,128}$")] | None = None
    every_days: _PositiveInt = 90
    # The old key stays valid (and is used if the new one fails) this long after a rotation.
    overlap_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    # The deployment whose provider the live check calls with the new key (a model list).
    verify_deployment: str | None = None
    # Failures are reported here too (log and metric always).
    alert_webhook: str | None = None
    timeout_s: _Positive = 30.0


# -- quality -----------------------------------------------------------------------------------
class QualityConfig(_Strict):
    """Per-response scores recorded with the request, user feedback, degradation detection.

    Off unless asked for: scoring and recording add ~35 µs of CPU to a call that otherwise
    costs ~70 µs in process (bench/quality_bench.py), which a library user should opt into.
    `deploy/` turns it on for the operated stack; a configured experiment turns recording on,
    since its report is read from these rows."""

    enabled: bool = False
    # Cheap checks on every response: validity (JSON / schema / tool calls / code parses),
    # groundedness against supplied or retrieved context, toxicity.
    validity: bool = True
    groundedness: bool = True
    toxicity: bool = True
    # Relevance and completeness by a judge model, on a sampled fraction of responses (in the
    # background, never delaying the answer). Default judge: the default model.
    judge_model: str | None = None
    judge_sample_rate: _Ratio = 0.0
    judge_max_tokens: _PositiveInt = 64
    # Degradation: a model's mean score over `window_s` against its own baseline (the mean over
    # `baseline_s` before that); a drop larger than `degradation_drop` raises the alert.
    window_s: _Positive = 3600.0
    baseline_s: _Positive = 7 * 86400.0
    degradation_drop: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.15
    min_samples: _PositiveInt = 20
    # Feed scores into routing (`report_quality`), so quality-aware strategies see them.
    feed_routing: bool = True
    retention_days: _PositiveInt = 90


class ExperimentVariantConfig(_Strict):
    """One arm of an A/B experiment: what it changes about the request."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
    weight: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    model: str | None = None  # another alias (or provider/model)
    template: str | None = None  # a prompt template name (`name` or `name@version`)
    params: dict[str, Any] = msgspec.field(default_factory=dict)  # temperature, max_tokens, ...


class ExperimentConfig(_Strict):
    """Requests for `alias` are split between `variants`, sticky per `sticky` (the same user
    or conversation always lands in the same variant)."""

    alias: str
    variants: list[ExperimentVariantConfig]
    sticky: Literal["user", "conversation", "key", "request"] = "user"
    enabled: bool = True
    description: str = ""
    # The score the significance test compares (`quality` = the mean of the recorded scores,
    # `feedback`, `latency`, `cost`, `errors`).
    metric: Literal["quality", "feedback", "latency", "cost", "errors"] = "quality"
