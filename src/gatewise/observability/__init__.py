"""Observability: `metrics` (counters, gauges and histograms any layer may keep, with a cap on
label sets), `collectors` (gauges refreshed from memory at scrape time), `logs` (the text and
JSON log formats of `gatewise serve`), and what watches calls: `telemetry` (the outermost
middleware: timings, metrics, one log line per request) and `incidents` (failovers, breaker
transitions, spent retry budgets, escalations)."""
