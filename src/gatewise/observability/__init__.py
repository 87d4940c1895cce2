"""Observability: `metrics` (counters and histograms any layer may keep), and what watches
calls: `telemetry` (the outermost middleware: timings, metrics, one log line per request) and
`incidents` (failovers, breaker transitions, spent retry budgets, escalations)."""
