"""The `/metrics` text is valid Prometheus exposition, as the ecosystem's own parsers read it:
`promtool check metrics` (Debian's prometheus package) and prometheus_client's text parser,
with every family filled and label values holding quotes, backslashes, newlines and unicode."""

from __future__ import annotations

import math
import os
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gatewise.observability.metrics import Counter, GatewayMetrics, Gauge, Histogram

HOSTILE = ["plain", 'say "hi"', "back\\slash", "two\nlines", "ünïcødé ✓ 模型", "", "\\n literal",
           "trailing\\"]
# promtool's lint findings the project has accepted (the name is a contract shared with the
# alert rules and dashboards); anything else, and any parse error, fails.
ACCEPTED_LINT: set[str] = set()

Sample = tuple[str, frozenset[tuple[str, str]], float]


def _filled() -> GatewayMetrics:
    m = GatewayMetrics()
    for f in m.families():
        for i, hostile in enumerate(HOSTILE):
            # the hostile value in each label position in turn, plain values elsewhere
            pos = i % max(1, len(f.label_names))
            labels = tuple(hostile if j == pos else f"v{j}" for j in range(len(f.label_names)))
            if isinstance(f, Histogram):
                f.observe(0.37 * i, labels)
                f.observe(1e9, labels)  # past the last bucket
            elif isinstance(f, Gauge):
                f.set(labels, -1.5 * i)
            else:
                f.inc(labels, 123456789.0 + i)  # `{:g}` would round this to 1.23457e+08
            if not f.label_names:
                break
    return m


def _expected(m: GatewayMetrics) -> set[Sample]:
    out: set[Sample] = set()
    for f in m.families():
        if isinstance(f, Histogram):
            for labels, (counts, total) in f.series.items():
                base = list(zip(f.label_names, labels, strict=True))
                acc = 0
                for bound, c in zip([*f.buckets, math.inf], counts, strict=True):
                    acc += c
                    le = "+Inf" if bound == math.inf else f"{bound:g}"
                    out.add((f"{f.name}_bucket", frozenset([*base, ("le", le)]), float(acc)))
                out.add((f"{f.name}_count", frozenset(base), float(acc)))
                out.add((f"{f.name}_sum", frozenset(base), round(total[0], 6)))
        else:
            for labels, v in f.values.items():
                out.add((f.name, frozenset(zip(f.label_names, labels, strict=True)), v))
    return out


def _parsed(text: str) -> set[Sample]:
    out: set[Sample] = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            le = s.labels.get("le")
            labels = dict(s.labels)
            if le is not None:  # the parser spells bucket bounds as floats ("1.0")
                labels["le"] = "+Inf" if le == "+Inf" else f"{float(le):g}"
            value = round(s.value, 6) if s.name.endswith("_sum") else s.value
            out.add((s.name, frozenset(labels.items()), value))
    return out


def test_prometheus_clients_parser_reads_back_every_sample_exactly() -> None:
    m = _filled()
    text = m.render()
    assert _parsed(text) == _expected(m)
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    for fam in m.families():
        short = fam.name.removesuffix("_total") if isinstance(fam, Counter) else fam.name
        assert types[short] == fam.type_name, fam.name


def test_special_values_and_empty_families_are_valid() -> None:
    m = GatewayMetrics()  # nothing observed: HELP and TYPE lines only
    m.in_flight.set((), math.inf)
    m.budget_used_ratio.set(("team", "red", "month"), math.nan)
    m.budget_remaining.set(("team", "red", "month"), -math.inf)
    samples = {s.name: s.value for f in text_string_to_metric_families(m.render())
               for s in f.samples}
    assert samples["gatewise_requests_in_flight"] == math.inf
    assert math.isnan(samples["gatewise_budget_used_ratio"])
    assert samples["gatewise_budget_remaining_usd"] == -math.inf
    _promtool(m.render())


def _promtool(text: str) -> None:
    tool = shutil.which("promtool") or ("/usr/bin/promtool"
                                        if os.path.exists("/usr/bin/promtool") else None)
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (Debian's prometheus package): CI must have it")
        pytest.skip("promtool not installed")
    proc = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60, check=False)
    findings = {line.strip() for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip()}
    # 0: clean; 3: lint findings only (parse errors exit 1)
    assert proc.returncode in (0, 3), findings
    assert findings <= ACCEPTED_LINT, findings - ACCEPTED_LINT


def test_promtool_accepts_the_exposition_of_every_family() -> None:
    _promtool(_filled().render())


def test_help_text_with_a_backslash_or_newline_is_escaped() -> None:
    c = Counter("gatewise_odd_total", "a \\ b\nnext line", ("x",))
    c.inc(("y",))
    text = "\n".join(c.render()) + "\n"
    assert "# HELP gatewise_odd_total a \\\\ b\\nnext line" in text
    [fam] = text_string_to_metric_families(text)
    assert fam.documentation == "a \\ b\nnext line"
    _promtool(text)
