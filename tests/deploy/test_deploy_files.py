"""The production files of ``deploy/``, validated offline with the tools that own each format.

- ``dagster.yaml``: Dagster's own instance-config schema (and the limits it ships);
  ``tests/dagster_project/test_multiprocess_deployment.py`` runs a backfill on it for real.
- ``workspace.yaml``: Dagster's workspace-config schema.
- ``k8s/*.yaml``: core kinds with ``kubernetes-validate`` (strict, Kubernetes 1.37 schemas);
  the dask-kubernetes custom resources (no schema of theirs is installed) by the structure of
  the operator's CRD templates, with every embedded PodSpec and ServiceSpec validated by
  ``kubernetes-validate`` as a Pod and a Service.
- ``docker-compose.yaml``: ``docker compose config`` (or ``docker-compose config``) where one
  is installed, else skipped with the reason.
- ``set-pool-limits.sh``: refuses a malformed limit before it touches the instance.

Not validated here: the Helm values against the chart (no ``helm`` and no copy of the chart
offline), the Dockerfile (images cannot be built or pulled on these machines).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
POOLS = ("raster", "training", "inference", "reports")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _k8s_validate(resource: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(resource, kubernetes_validate.latest_version(), strict=True)


def test_instance_config_passes_dagsters_schema_with_postgres_storage_and_limits(monkeypatch, tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    for key, value in {"HOST": "db", "PORT": "5432", "USER": "u", "PASSWORD": "p", "DB": "dagster"}.items():
        monkeypatch.setenv(f"DAGSTER_PG_{key}", value)
    cfg, _ = dagster_instance_config(str(tmp_path))
    for storage, module in [
        ("run_storage", "dagster_postgres.run_storage"),
        ("event_log_storage", "dagster_postgres.event_log"),
        ("schedule_storage", "dagster_postgres.schedule_storage"),
    ]:
        assert cfg[storage]["module"] == module
        db = cfg[storage]["config"]["postgres_db"]
        assert db["hostname"] == {"env": "DAGSTER_PG_HOST"} and db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
        assert db["scheme"] == "postgresql+psycopg2"
    assert cfg["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert cfg["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert cfg["concurrency"]["pools"]["default_limit"] >= 1


def test_workspace_loads_the_code_location_from_its_grpc_server():
    from dagster._core.workspace.config_schema import process_workspace_config

    result = process_workspace_config(yaml.safe_load((DEPLOY / "workspace.yaml").read_text()))
    assert result.success, result.errors
    [entry] = result.value["load_from"]
    assert entry["grpc_server"]["port"] == 4000 and entry["grpc_server"]["location_name"] == "earth_memory"


def test_core_kubernetes_manifests_pass_kubernetes_validate():
    checked = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in _docs(path):
            if doc.get("apiVersion", "").startswith("kubernetes.dask.org/"):
                continue
            _k8s_validate(doc)
            checked.append(f"{doc['kind']}/{doc['metadata']['name']}")
    assert "Job/earth-memory-pool-limits" in checked


def test_pool_limits_job_sets_every_pool_of_the_assets():
    [job] = _docs(DEPLOY / "k8s" / "pool-limits-job.yaml")
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    limits = {k.removeprefix("MEMORIES_POOL_").lower(): v for k, v in env.items() if k.startswith("MEMORIES_POOL_")}
    assert sorted(limits) == sorted(POOLS) and all(int(v) >= 1 for v in limits.values())


def test_dask_cluster_follows_the_operator_crd_and_its_pod_specs_validate():
    cluster, autoscaler = _docs(DEPLOY / "k8s" / "dask-cluster.yaml")
    # The structure of dask-kubernetes' DaskCluster template: spec.scheduler.{spec: PodSpec, service:
    # ServiceSpec} and spec.worker.{replicas: int, spec: PodSpec}, all required.
    assert (cluster["apiVersion"], cluster["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    spec = cluster["spec"]
    assert set(spec) <= {"scheduler", "worker", "idleTimeout"} and {"scheduler", "worker"} <= set(spec)
    assert set(spec["scheduler"]) == {"spec", "service"} and set(spec["worker"]) <= {"spec", "replicas"}
    assert isinstance(spec["worker"]["replicas"], int)
    name = cluster["metadata"]["name"]
    for role in ("scheduler", "worker"):
        _k8s_validate(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-{role}"}, "spec": spec[role]["spec"]}
        )
    _k8s_validate(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec["scheduler"]["service"]}
    )
    assert spec["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == name
    # DaskAutoscaler: spec.cluster names the cluster; integer bounds, minimum <= maximum.
    assert (autoscaler["kind"], autoscaler["spec"]["cluster"]) == ("DaskAutoscaler", name)
    assert 0 <= autoscaler["spec"]["minimum"] <= autoscaler["spec"]["maximum"]
    # The code location's configuration names the scheduler Service the operator creates.
    memories = yaml.safe_load((DEPLOY / "memories.k8s.yaml").read_text())
    assert memories["compute"]["dask_scheduler"] == f"tcp://{name}-scheduler:8786"


def test_memories_configs_of_the_deployments_are_valid_settings():
    from memories.config import load_settings

    compose = load_settings(DEPLOY / "memories.compose.yaml")
    assert compose.storage.root.startswith("s3://") and compose.compute.dask_scheduler == "tcp://dask-scheduler:8786"
    assert load_settings(DEPLOY / "memories.k8s.yaml").storage.root.startswith("s3://")


def _compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_renders_with_every_service(tmp_path):
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed: the compose file was not rendered")
    run = subprocess.run(
        [*command, "--env-file", str(DEPLOY / ".env.example"), "-f", str(DEPLOY / "docker-compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MINIO_"))},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    services = yaml.safe_load(run.stdout)["services"]
    expected = {"postgres", "minio", "dask-scheduler", "dask-worker", "code-location", "webserver", "daemon"}
    assert expected <= set(services)
    assert services["dask-worker"]["deploy"]["replicas"] == 2
    env = services["code-location"]["environment"]
    assert env["MEMORIES_CATALOG_URL"].startswith("postgresql://") and env["DAGSTER_PG_HOST"] == "postgres"
    # No secret in the file: without the env file compose refuses, naming the variable.
    (empty := tmp_path / "empty.env").write_text("")
    bare = subprocess.run(
        [*command, "--env-file", str(empty), "-f", str(DEPLOY / "docker-compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MINIO_"))},
        timeout=60,
    )
    assert bare.returncode != 0 and "DAGSTER_PG_PASSWORD" in bare.stderr + bare.stdout


def test_set_pool_limits_sets_the_slots_of_the_deployments_instance_and_refuses_a_malformed_one(tmp_path):
    """The script runs dagster_project.instance against the deployment's own dagster.yaml, unchanged."""
    from dagster import DagsterInstance

    home = tmp_path / "home"
    home.mkdir()
    own = f"storage:\n  sqlite:\n    base_dir: {tmp_path / 'storage'}\ntelemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(own)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "DAGSTER_HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("MEMORIES_POOL_")}
    script = ["sh", str(DEPLOY / "set-pool-limits.sh")]
    bad = subprocess.run(script, env={**env, "MEMORIES_POOL_RASTER": "two"}, capture_output=True, text=True)
    assert bad.returncode == 2 and "MEMORIES_POOL_RASTER='two'" in bad.stderr, bad.stderr
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.event_log_storage.get_concurrency_info("raster").slot_count == 0
    ok = subprocess.run(script, env={**env, "MEMORIES_POOL_RASTER": "3"}, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    with DagsterInstance.from_config(str(home)) as instance:
        slots = {p: instance.event_log_storage.get_concurrency_info(p).slot_count for p in POOLS}
    assert slots["raster"] == 3 and all(n >= 1 for n in slots.values()), slots
    assert (home / "dagster.yaml").read_text() == own
