"""What an operator deploys from deploy/: alert rules that promtool checks and unit-tests, a runbook entry
for each alert, Kubernetes manifests valid against the Kubernetes schemas and consistent with each other,
and an image definition that installs the wheel and runs unprivileged.

The image is not built here: that needs its base image from a registry. What can be checked without one
is: the wheel it installs (tests/test_package.py builds and runs it from the same sources), and the
Containerfile's own promises, below.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from typing import Any

import kubernetes_validate
import orjson
import pytest
import yaml

from tests.prometheus import DASHBOARDS, DEPLOY, RULES, dashboard_expressions
from tests.test_package import SOURCES

ROOT = DEPLOY.parent
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
RUNBOOK = ROOT / "docs" / "runbook.md"
# The oldest Kubernetes whose schemas kubernetes-validate ships (autoscaling/v2 and policy/v1 are GA there),
# and the newest.
KUBERNETES_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
# Custom resources: no Kubernetes schema has them; they are checked against what they point at instead.
CUSTOM_KINDS = {"ServiceMonitor"}


def resources() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def resource(kind: str, name: str) -> dict[str, Any]:
    return next(doc for doc in resources() if doc["kind"] == kind and doc["metadata"]["name"] == name)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "Debian's prometheus package must be installed (.ci/run installs it)"
    return subprocess.run([found, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=60)


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_alert_rules_pass_promtool_check() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_rule_passes_its_promtool_unit_tests() -> None:
    tested = promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    unit_tests = (RULES.parent / "alerts.test.yml").read_text()
    assert [name for name in alert_names() if f"alertname: {name}\n" not in unit_tests] == []


def test_every_alert_links_a_runbook_entry_that_says_what_to_look_at_and_what_to_do() -> None:
    runbook = RUNBOOK.read_text()
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", runbook, flags=re.M | re.S))
    groups = yaml.safe_load(RULES.read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{rule['alert'].lower()}"
        section = sections.get(rule["alert"], "")
        assert all(part in section for part in ("**Means**", "**Look at**", "**Do**")), rule["alert"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_kubernetes_manifests_are_valid_against_the_schemas(version: str) -> None:
    failures = []
    for doc in resources():
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert failures == []
    assert {doc["kind"] for doc in resources()} >= {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor", "ConfigMap",
    }  # fmt: skip


def pod_spec(name: str) -> dict[str, Any]:
    return resource("Deployment", name)["spec"]["template"]["spec"]


def test_prometheus_finds_every_hub_and_worker_on_the_metrics_port_and_nobody_else_does() -> None:
    monitor = resource("ServiceMonitor", "course-report-hub")["spec"]
    services = [doc for doc in resources() if doc["kind"] == "Service"]
    [watched] = [s for s in services if monitor["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    port = ConfigMap().value("METRICS_PORT")
    assert [p["name"] for p in watched["spec"]["ports"]] == [e["port"] for e in monitor["endpoints"]] == ["metrics"]
    for name in ("course-report-hub-web", "course-report-hub-worker"):
        labels = resource("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert watched["spec"]["selector"].items() <= labels.items(), name
        [container] = pod_spec(name)["containers"]
        assert {"name": "metrics", "containerPort": port} in container["ports"], name
    public = resource("Service", "course-report-hub")
    assert [p["targetPort"] for p in public["spec"]["ports"]] == ["http"]


def test_web_pods_are_probed_on_readyz_and_healthz_and_drain_within_their_grace() -> None:
    spec = pod_spec("course-report-hub-web")
    [container] = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pause > 0
    assert pause + ConfigMap().value("DRAIN_GRACE") < spec["terminationGracePeriodSeconds"]


def test_both_processes_run_the_same_image_unprivileged() -> None:
    containerfile = Containerfile()
    web, worker = (pod_spec(name) for name in ("course-report-hub-web", "course-report-hub-worker"))
    assert web["containers"][0]["image"] == worker["containers"][0]["image"]
    assert (web["containers"][0]["args"], worker["containers"][0]["args"]) == (["serve"], ["worker"])
    for spec in (web, worker):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == containerfile.user
        assert spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_containerfile_installs_the_wheel_built_from_the_packaged_sources_and_runs_as_a_user() -> None:
    containerfile = Containerfile()
    assert containerfile.user != 0
    assert containerfile.copied_sources == set(SOURCES)
    assert "pip wheel --no-cache-dir --wheel-dir /wheels ." in containerfile.runs
    assert any(run.startswith("pip install --no-cache-dir --no-index /wheels/*.whl") for run in containerfile.runs)
    assert containerfile.instructions["ENTRYPOINT"] == ['["hub"]']
    assert containerfile.instructions["CMD"] == ['["serve"]']
    assert containerfile.instructions["EXPOSE"] == [f"{ConfigMap().value('PORT')} {ConfigMap().value('METRICS_PORT')}"]


def test_the_dashboard_charts_the_promise_outcomes_queue_workers_sockets_and_delivery() -> None:
    [path] = DASHBOARDS
    dashboard = orjson.loads(path.read_bytes())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    used = {name for expression in dashboard_expressions(path) for name in re.findall(r"\bhub_[a-z0-9_]+", expression)}
    assert used >= {
        "hub_report_click_to_ready_seconds_bucket", "hub_reports_ended_total", "hub_jobs_queued",
        "hub_queue_oldest_wait_seconds", "hub_workers_alive", "hub_worker_jobs_running", "hub_open_connections",
        "hub_events_delivered_total", "hub_notifications_failed_total",
    }  # fmt: skip


class ConfigMap:
    def __init__(self) -> None:
        self.data = resource("ConfigMap", "course-report-hub")["data"]

    def value(self, name: str) -> int:
        return int(self.data[name])


class Containerfile:
    """The Containerfile's instructions (continuation lines joined), and what its final stage runs as."""

    def __init__(self) -> None:
        text = (ROOT / "Containerfile").read_text().replace("\\\n", " ")
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        self.instructions: dict[str, list[str]] = {}
        for line in lines:
            keyword, _, rest = line.partition(" ")
            self.instructions.setdefault(keyword, []).append(" ".join(rest.split()))
        self.runs = self.instructions["RUN"]
        self.user = int(self.instructions["USER"][-1].split(":")[0])
        copies = [shlex.split(args) for args in self.instructions["COPY"] if not args.startswith("--from")]
        self.copied_sources = {source.rstrip("/") for args in copies for source in args[:-1]}
