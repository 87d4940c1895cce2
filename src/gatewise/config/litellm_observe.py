"""LiteLLM's logging callbacks and log settings → gatewise's metrics, traces and logs.

- `prometheus` (in `success_callback`, `failure_callback`, `callbacks` or `service_callbacks`):
  gatewise always serves Prometheus metrics at `/metrics`, so nothing needs turning on.
- `otel` / `opentelemetry` → `observability.tracing`, configured from LiteLLM's variables:
  OTEL_EXPORTER_OTLP_PROTOCOL or OTEL_EXPORTER (`console`, `otlp_http`, `in_memory`),
  OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_ENDPOINT (`/v1/traces` appended when missing, as LiteLLM
  does), OTEL_EXPORTER_OTLP_HEADERS or OTEL_HEADERS (`k=v,k2=v2`, values URL-decoded),
  OTEL_SERVICE_NAME. `callback_settings.otel.message_logging: true` records prompt text on spans
  (the masked form); otherwise gatewise keeps it off, LiteLLM's `turn_off_message_logging`.
- Guards given as callbacks (`presidio`, `detect_prompt_injection`) → `litellm_guardrails`.
- Any other destination (Langfuse, Datadog, S3, Sentry, a custom class) has no equivalent in
  gatewise and is reported; nothing is sent there.
- `json_logs: true` → JSON log lines; `set_verbose: true` → debug level.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from gatewise.config.litellm_common import Translation, names_list
from gatewise.config.litellm_guardrails import apply_callback

CALLBACK_KEYS = ("success_callback", "failure_callback", "callbacks", "service_callbacks")
_OTEL = frozenset({"otel", "opentelemetry"})
_METRICS = frozenset({"prometheus", "prometheus_system"})
# Vendors LiteLLM reaches through OpenTelemetry: gatewise's OTLP exporter can do the same.
_OTLP_VENDORS = frozenset({"arize", "arize_phoenix", "langfuse_otel", "logfire", "traceloop",
                           "langtrace", "levo", "weave_otel", "signoz"})
_EXPORTERS = {"console": "console", "otlp_http": "otlp_http", "http/protobuf": "otlp_http",
              "http/json": "otlp_http", "http": "otlp_http", "in_memory": "memory",
              "memory": "memory"}


def translate_callbacks(t: Translation, settings: dict[str, Any]) -> None:
    """Every callback list in `litellm_settings`, one report line per destination gatewise
    has no equivalent for."""
    seen: set[str] = set()
    for key in CALLBACK_KEYS:
        for name in names_list(settings.get(key)):
            path = f"litellm_settings.{key}"
            if name in _METRICS:
                continue
            if name in _OTEL:
                enable_tracing(t)
            elif apply_callback(t, name, f"{path} ({name})", settings):
                pass
            elif name in _OTLP_VENDORS:
                if name not in seen:
                    t.report(path, f"'{name}' has no gatewise equivalent; its OTLP endpoint can "
                             "be set as observability.tracing.endpoint instead")
            elif name not in seen:
                t.report(path, f"'{name}' has no gatewise equivalent (nothing is sent there)")
            seen.add(name)


def enable_tracing(t: Translation) -> None:
    tracing = t.section("observability", "tracing")
    if tracing.get("enabled"):
        return
    tracing["enabled"] = True
    env = t.env
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or env.get("OTEL_EXPORTER") or "console"
    exporter = _EXPORTERS.get(protocol.strip().lower())
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_ENDPOINT")
    if exporter is None:
        t.report("litellm_settings.callbacks (otel)", f"exporter '{protocol}': gatewise "
                 "exports OTLP over HTTP only; traces go to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "
                 "or http://localhost:4318/v1/traces")
        exporter, endpoint = "otlp_http", None
    tracing["exporter"] = exporter
    if exporter == "otlp_http" and endpoint:
        base = endpoint.rstrip("/")
        tracing["endpoint"] = base if base.endswith("/v1/traces") else f"{base}/v1/traces"
    headers = env.get("OTEL_EXPORTER_OTLP_HEADERS") or env.get("OTEL_HEADERS")
    if headers and exporter == "otlp_http":
        tracing["headers"] = _headers(headers)
    if env.get("OTEL_SERVICE_NAME"):
        tracing["service_name"] = env["OTEL_SERVICE_NAME"]


def _headers(text: str) -> dict[str, str]:
    """OTLP's `k=v,k2=v2` header list (values URL-encoded, as the OpenTelemetry spec says)."""
    out: dict[str, str] = {}
    for part in text.split(","):
        name, eq, value = part.partition("=")
        if eq and name.strip():
            out[unquote(name.strip())] = unquote(value.strip())
    return out


def translate_callback_settings(t: Translation, value: Any) -> None:
    """Top-level `callback_settings: {otel: {message_logging: bool}}`."""
    if not isinstance(value, dict):
        raise t.error("must be a mapping", "callback_settings")
    for name, opts in value.items():
        where = f"callback_settings.{name}"
        if name not in _OTEL or not isinstance(opts, dict):
            t.unsupported(where)
            continue
        for key, flag in opts.items():
            if key == "message_logging":
                if flag:
                    t.section("observability", "tracing")["capture_content"] = True
            else:
                t.unsupported(f"{where}.{key}")


def translate_log_settings(t: Translation, key: str, value: Any) -> bool:
    """`json_logs`, `set_verbose` and the message-logging switches; False for other keys."""
    if key == "json_logs":
        if value:
            t.section("observability", "logging")["format"] = "json"
        return True
    if key == "set_verbose":
        if value:
            t.section("observability", "logging")["level"] = "debug"
        return True
    if key == "turn_off_message_logging":
        if value:
            t.section("observability", "tracing")["capture_content"] = False
        return True
    return False
