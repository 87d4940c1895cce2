"""OpenTelemetry traces (the `otel` extra): a span per request, per attempt, per guard, for
the cache lookup, retrieval and each tool call, with the GenAI semantic-convention attributes,
W3C `traceparent` continued from the client and passed on to the upstream.

Off by default, and then free: `build_tracing` returns None without importing anything of
OpenTelemetry, and the gateway's chain is exactly the one it has without tracing. Only when
`observability.tracing.enabled` is set does it import the SDK (`provider.py`, `spans.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gatewise.config.schema_ops import TracingConfig
from gatewise.errors import ConfigError

if TYPE_CHECKING:
    from gatewise.observability.tracing.provider import Tracing

__all__ = ["build_tracing"]


def build_tracing(config: TracingConfig, *, headers: Mapping[str, str] | None = None,
                  env: Mapping[str, str] | None = None) -> Tracing | None:
    """The gateway's tracing, or None when it is off. `headers`: the OTLP export headers with
    their secret references resolved (`ResolvedConfig.tracing_headers`); `env`: the
    environment the config was resolved with (`OTEL_EXPORTER_OTLP_*TRACES_ENDPOINT` when the
    config names no endpoint)."""
    if not config.enabled:
        return None
    try:
        from gatewise.observability.tracing.provider import Tracing
    except ImportError as exc:
        raise ConfigError("observability.tracing needs the OpenTelemetry SDK: "
                          "pip install 'gatewise[otel]'",
                          path="observability.tracing.enabled") from exc
    return Tracing(config, headers=headers, env=env)
