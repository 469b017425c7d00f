"""deploy/kubernetes and the compose worker's healthcheck agree with the worker's CLI.

No cluster and no Docker engine here: the manifests are parsed and cross-checked the
way the kubelet and compose would use them — every command line parses with `tdsl`'s
own parser, and the probes, ports and annotations point at what those flags serve.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from interpreter.cli.app import build_parser
from tests.test_compose import WORKER_SETTINGS, command

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES = ROOT / "deploy" / "kubernetes"


def _documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        docs += [d for d in YAML(typ="safe", pure=True).load_all(path) if d]
    return docs


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _documents() if d["kind"] == kind]


def _parse(argv: list[str]) -> argparse.Namespace:
    """*argv* as `tdsl` parses it; a flag it does not know fails the test."""
    assert argv[0] == "tdsl"
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            return build_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"tdsl refuses {argv}: {err.getvalue()}")


def _deployment(name: str) -> dict[str, Any]:
    (deployment,) = [d for d in _kind("Deployment") if d["metadata"]["name"] == name]
    return deployment


def _container(deployment_name: str) -> dict[str, Any]:
    (container,) = _deployment(deployment_name)["spec"]["template"]["spec"]["containers"]
    return container


def _worker_container() -> dict[str, Any]:
    return _container("tdsl-worker")


def test_every_document_is_a_known_kind() -> None:
    kinds = sorted(d["kind"] for d in _documents())
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Job", "Secret", "Service"]


def test_the_api_listens_on_the_pod_with_a_token_and_its_service_reaches_it() -> None:
    container = _container("tdsl-serve")
    args = _parse(container["args"])
    assert args.command == "serve"
    assert (args.host, args.port) == ("0.0.0.0", 8800)  # beyond localhost: needs the token
    (secret,) = _kind("Secret")
    assert "TDSL_API_TOKEN" in secret["stringData"]
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in container["envFrom"]
    (port,) = container["ports"]
    assert port["containerPort"] == args.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/openapi.json", "port": port["name"]}
    (service,) = _kind("Service")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_worker_probes_ask_its_health_port() -> None:
    container = _worker_container()
    args = _parse(container["args"])
    assert args.command == "worker"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == args.health_port
    assert ports["metrics"] == args.metrics_port
    assert args.health_host == "0.0.0.0"  # the kubelet probes the pod's address
    assert args.metrics_host == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"


def test_the_metrics_port_is_annotated_for_scraping() -> None:
    deployment = _deployment("tdsl-worker")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    args = _parse(_worker_container()["args"])
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == args.metrics_port
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_selector_matches_the_pods() -> None:
    deployment = _deployment("tdsl-worker")
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_pods_get_every_setting_the_worker_reads() -> None:
    (config,) = _kind("ConfigMap")
    (secret,) = _kind("Secret")
    provided = set(config["data"]) | set(secret["stringData"])
    assert set(WORKER_SETTINGS) <= provided
    for workload in (
        _worker_container(),
        _kind("Job")[0]["spec"]["template"]["spec"]["containers"][0],
    ):
        sources = {next(iter(s.values()))["name"] for s in workload["envFrom"]}
        assert sources == {config["metadata"]["name"], secret["metadata"]["name"]}
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in config["data"]


def test_the_migration_job_runs_tdsl_db_migrate() -> None:
    (job,) = _kind("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = _parse(container["command"])
    assert (args.command, args.db_command) == ("db", "migrate")
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


def test_the_grace_period_outlasts_the_workers_drain() -> None:
    from interpreter.worker import DEFAULT_GRACEFUL_SHUTDOWN

    deployment = _deployment("tdsl-worker")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > DEFAULT_GRACEFUL_SHUTDOWN.total_seconds()


def test_the_compose_worker_is_healthy_only_when_ready() -> None:
    services = YAML(typ="safe", pure=True).load(ROOT / "docker-compose.yml")["services"]
    worker = services["worker"]
    args = _parse(command(worker))
    assert args.command == "worker"
    probe = " ".join(worker["healthcheck"]["test"])
    assert f"http://127.0.0.1:{args.health_port}/readyz" in probe
    assert args.health_host == "127.0.0.1"  # the healthcheck runs inside the container
    grace = int(str(worker["stop_grace_period"]).rstrip("s"))
    from interpreter.worker import DEFAULT_GRACEFUL_SHUTDOWN

    assert grace > DEFAULT_GRACEFUL_SHUTDOWN.total_seconds()
