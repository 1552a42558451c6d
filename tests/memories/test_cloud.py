"""memories.cloud.CloudDeployment: the seed's call renders the deployment for each provider, and applies it.

The rendered files are read back and checked for the values a provider needs (storage class,
object-store endpoint, node pool, catalog), the autoscaler's bounds, and Kubernetes validity
(``kubernetes-validate`` for core kinds; pod specs of the DaskCluster as Pods). ``kubectl`` and
``helm`` are external CLIs: a test puts a recording stand-in first on PATH to check the exact
commands, another removes them from PATH to check nothing is invoked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from memories.cloud import DEFAULT_POOL_LIMITS, CloudDeployment
from memories.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
MINIO = "http://minio.earth-memory.svc.cluster.local:9000"
GCS = "https://storage.googleapis.com"


def _read(folder: Path, name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((folder / name).read_text()) if d]


def _no_cli_path(tmp_path: Path) -> str:
    """A PATH without kubectl or helm (an empty folder: the tests call the interpreter by its full path)."""
    bare = tmp_path / "empty-bin"
    bare.mkdir(exist_ok=True)
    return str(bare)


@pytest.mark.parametrize(
    ("provider", "region", "storage_class", "node_label", "endpoint", "catalog"),
    [
        ("aws", "us-west-2", "gp3", "eks.amazonaws.com/nodegroup", None, "earth-search"),
        ("gcp", "europe-west4", "standard-rwo", "cloud.google.com/gke-nodepool", GCS, "earth-search"),
        ("azure", "westeurope", "managed-csi", "kubernetes.azure.com/agentpool", MINIO, "planetary-computer"),
        ("kubernetes", None, "standard", "kubernetes.io/os", MINIO, "earth-search"),
    ],
)  # fmt: skip
def test_seed_call_renders_provider_specifics_and_autoscaler_bounds(
    tmp_path, monkeypatch, provider, region, storage_class, node_label, endpoint, catalog
):
    monkeypatch.setenv("PATH", _no_cli_path(tmp_path))
    monkeypatch.chdir(tmp_path)
    deployment = CloudDeployment(provider=provider, region=region, min_instances=2, max_instances=10, auto_scaling=True)
    result = deployment.deploy("my_application.py")
    out = tmp_path / "deployment"
    assert not result.applied and result.folder == Path("deployment")
    assert sorted(p.name for p in out.iterdir()) == [
        "dask-cluster.yaml",
        "memories-config.yaml",
        "namespace.yaml",
        "pool-limits-job.yaml",
        "values.yaml",
    ]
    cluster, autoscaler = _read(out, "dask-cluster.yaml")
    assert (autoscaler["kind"], autoscaler["spec"]) == (
        "DaskAutoscaler",
        {"cluster": "earth-memory-dask", "minimum": 2, "maximum": 10},
    )
    worker = cluster["spec"]["worker"]
    assert worker["replicas"] == 2
    assert worker["spec"]["nodeSelector"] == {node_label: "linux" if provider == "kubernetes" else "earthmemory"}
    [scratch] = [v for v in worker["spec"]["volumes"] if v["name"] == "scratch"]
    assert scratch["ephemeral"]["volumeClaimTemplate"]["spec"]["storageClassName"] == storage_class
    [config_map] = _read(out, "memories-config.yaml")
    settings = yaml.safe_load(config_map["data"]["memories.yaml"])
    assert settings["storage"].get("s3_endpoint_url") == endpoint
    assert settings["storage"]["root"] == "s3://earth-memory/store"
    assert settings["compute"]["dask_scheduler"] == "tcp://earth-memory-dask-scheduler:8786"
    assert settings["catalog"]["profile"] == catalog
    env = {e["name"]: e["value"] for e in worker["spec"]["containers"][0]["env"]}
    assert env.get("AWS_DEFAULT_REGION") == {"aws": region, "gcp": "auto"}.get(provider)
    [values] = _read(out, "values.yaml")
    [code] = values["dagster-user-deployments"]["deployments"]
    assert code["dagsterApiGrpcArgs"] == ["-f", "my_application.py", "--location-name", "earth_memory"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    [job] = _read(out, "pool-limits-job.yaml")
    limits = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {k: v for k, v in limits.items() if k.startswith("MEMORIES_POOL_")} == {
        "MEMORIES_POOL_RASTER": "2",
        "MEMORIES_POOL_TRAINING": "1",
        "MEMORIES_POOL_INFERENCE": "1",
        "MEMORIES_POOL_REPORTS": "2",
    }
    # Not applied: the commands are what the result shows, secrets referenced by variable, never by value.
    printed = str(result)
    assert "helm upgrade --install earth-memory dagster/dagster --version 1.13.27 -n earth-memory" in printed
    assert '--from-literal=MEMORIES_CATALOG_URL="$MEMORIES_CATALOG_URL"' in printed
    assert result.commands[-1] == "kubectl apply -n earth-memory -f deployment/pool-limits-job.yaml"


def test_rendered_manifests_are_valid_kubernetes():
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    rendered = CloudDeployment(provider="gcp", region="europe-west4").render()
    for name in ("namespace.yaml", "memories-config.yaml", "pool-limits-job.yaml"):
        for doc in rendered[name]:
            kubernetes_validate.validate(doc, version, strict=True)
    cluster = rendered["dask-cluster.yaml"][0]["spec"]
    for role in ("worker", "scheduler"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": role}, "spec": cluster[role]["spec"]}
        kubernetes_validate.validate(pod, version, strict=True)


def test_fixed_cluster_without_auto_scaling_has_max_instances_workers_and_no_autoscaler():
    [cluster] = CloudDeployment(min_instances=1, max_instances=3, auto_scaling=False).render()["dask-cluster.yaml"]
    assert cluster["kind"] == "DaskCluster" and cluster["spec"]["worker"]["replicas"] == 3


def test_committed_deploy_files_are_the_plain_kubernetes_render():
    """deploy/helm and deploy/k8s are CloudDeployment(provider="kubernetes")'s output: one home for both."""
    d = CloudDeployment()
    rendered = d.render()
    committed = {
        "values.yaml": REPO / "deploy" / "helm" / "values.yaml",
        "dask-cluster.yaml": REPO / "deploy" / "k8s" / "dask-cluster.yaml",
        "pool-limits-job.yaml": REPO / "deploy" / "k8s" / "pool-limits-job.yaml",
    }
    for name, path in committed.items():
        assert [x for x in yaml.safe_load_all(path.read_text()) if x] == rendered[name], path
    assert yaml.safe_load((REPO / "deploy" / "memories.k8s.yaml").read_text()) == d.memories_settings()


def test_deploy_runs_kubectl_and_helm_in_order_when_they_are_on_path(tmp_path, monkeypatch):
    calls = tmp_path / "calls.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("kubectl", "helm"):
        # Stand-ins for the external CLIs: record argv and standard input, succeed.
        script = bin_dir / tool
        script.write_text(
            f'#!/bin/sh\necho "{tool} $*" >> {calls}\nif [ "$*" != "${{*%-f -}}" ]; then cat >> {calls}; fi\n'
        )
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "s3cret")
    out = tmp_path / "out"
    result = CloudDeployment(provider="aws", region="eu-central-1", min_instances=1, max_instances=4).deploy(
        output_dir=out
    )
    assert result.applied
    lines = calls.read_text().splitlines()
    assert lines == [
        f"kubectl apply -f {out}/namespace.yaml",
        f"kubectl apply -n earth-memory -f {out}/memories-config.yaml",
        "helm repo add dagster https://dagster-io.github.io/helm --force-update",
        "helm upgrade --install earth-memory dagster/dagster --version 1.13.27 -n earth-memory"
        f" -f {out}/values.yaml -f -",
        "postgresql:",
        "  postgresqlPassword: s3cret",
        f"kubectl apply -n earth-memory -f {out}/dask-cluster.yaml",
        "kubectl delete -n earth-memory job earth-memory-pool-limits --ignore-not-found",
        f"kubectl apply -n earth-memory -f {out}/pool-limits-job.yaml",
    ]
    # The password went to helm's standard input only, never into a file.
    assert all("s3cret" not in p.read_text() for p in out.iterdir())


def test_deploy_invokes_nothing_without_kubectl_and_helm(tmp_path, monkeypatch):
    """In a fresh interpreter whose PATH has neither CLI: files written, commands printed, nothing run."""
    code = (
        "from memories.cloud import CloudDeployment\n"
        "r = CloudDeployment(provider='azure', region='westeurope').deploy(output_dir='out')\n"
        "print('APPLIED', r.applied)\n"
        "print(r)\n"
    )
    env = {**os.environ, "PATH": _no_cli_path(tmp_path), "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "APPLIED False" in run.stdout and "kubectl apply -n earth-memory -f out/dask-cluster.yaml" in run.stdout
    assert (tmp_path / "out" / "values.yaml").exists()
    monkeypatch.setenv("PATH", _no_cli_path(tmp_path))
    with pytest.raises(ConfigError, match="kubectl and helm not on PATH"):
        CloudDeployment().deploy(output_dir=tmp_path / "forced", apply=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"provider": "aws"}, "needs region="),
        ({"provider": "ibm"}, "choose one of"),
        ({"min_instances": 5, "max_instances": 2}, "min_instances <= max_instances"),
        ({"pool_limits": {**DEFAULT_POOL_LIMITS, "raster": 0}}, "whole number >= 1"),
        ({"image": "earth-memory"}, "repository:tag"),
    ],
)
def test_bad_arguments_name_the_fix(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CloudDeployment(**kwargs).render()


def test_memories_cloud_does_not_import_dagster():
    code = "import sys, memories.cloud; print('dagster' in sys.modules)"
    run = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True
    )
    assert run.stdout.strip() == "False", run.stderr
