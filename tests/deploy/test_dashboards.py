"""The Grafana dashboards (deploy/grafana): the six the issue names, well-formed JSON Grafana
can provision, every panel on a Prometheus datasource, and in step with their generator.
Their queries' metric names are checked in test_prometheus_rules.py (beside promtool)."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.deploy.promql import DASHBOARDS, DEPLOY, dashboards, panels

GRAFANA = DEPLOY / "grafana"
EXPECTED = {"overview.json", "teams.json", "providers.json", "cache.json", "guardrails.json",
            "quality.json"}


def test_the_six_dashboards_are_shipped_as_json() -> None:
    boards = dashboards()
    assert set(boards) == EXPECTED
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        assert board["title"].startswith("gatewise / "), name
        assert isinstance(board["schemaVersion"], int), name


def test_panel_ids_are_unique_and_every_panel_queries_prometheus() -> None:
    for name, board in dashboards().items():
        ps = panels(board)
        ids = [p["id"] for p in ps]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        queried = [p for p in ps if p["type"] != "row"]
        assert len(queried) >= 4, name
        for p in queried:
            assert p["datasource"]["type"] == "prometheus", (name, p["title"])
            assert p["targets"], (name, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["type"] == "prometheus", (name, p["title"])
                assert t["expr"].strip(), (name, p["title"])


def test_panels_do_not_overlap() -> None:
    for name, board in dashboards().items():
        taken: set[tuple[int, int]] = set()
        for p in panels(board):
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (name, p["title"])
            cells = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                     for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & taken, (name, p["title"])
            taken |= cells


def test_the_datasource_is_a_variable_so_any_prometheus_works() -> None:
    for name, board in dashboards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", name
        assert variables["datasource"]["query"] == "prometheus", name
        for p in panels(board):
            if p["type"] != "row":
                assert p["datasource"]["uid"] == "${datasource}", (name, p["title"])


def test_the_json_is_what_the_generator_writes() -> None:
    done = subprocess.run([sys.executable, str(GRAFANA / "generate_dashboards.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_grafana_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus", "http://prometheus:9090", True)
    prov = yaml.safe_load((GRAFANA / "provisioning/dashboards/gatewise.yml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert DASHBOARDS.is_dir()
