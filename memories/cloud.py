"""The Earth memory on a cloud's Kubernetes: render the deployment for a provider, then apply it.

``CloudDeployment(provider="aws", region="us-west-2", min_instances=2, max_instances=10,
auto_scaling=True).deploy("my_application.py")`` renders, for Amazon EKS, Google GKE, Azure AKS
or plain Kubernetes:

``namespace.yaml``; ``memories-config.yaml`` (a ConfigMap with every pod's ``MEMORIES_CONFIG``);
``values.yaml`` for Dagster's Helm chart (the application served by ``dagster api grpc``,
PostgreSQL, K8sRunLauncher, QueuedRunCoordinator, pools); ``dask-cluster.yaml`` (a dask-kubernetes
``DaskCluster`` and, with ``auto_scaling``, a ``DaskAutoscaler`` bounded by ``min_instances`` /
``max_instances`` Dask workers; without it a fixed cluster of ``max_instances``); and
``pool-limits-job.yaml`` (a Job setting the Dagster pool limits). What differs per provider is
in :data:`PROFILES`: spill-disk storage class, the object store behind ``s3://`` (S3; GCS through
its S3-compatible XML API with HMAC keys; MinIO in the cluster on AKS and plain Kubernetes), the
node-pool label, the STAC catalog.

When ``kubectl`` and ``helm`` are on the PATH, :meth:`CloudDeployment.deploy` runs the commands;
otherwise it writes the files and prints the commands. Secrets never enter the files: the pods
read ``earth-memory-secrets`` (``MEMORIES_CATALOG_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``), which :meth:`CloudDeployment.secret_command` shows how to create from
the environment, and the chart's PostgreSQL password is passed to ``helm`` on standard input
from ``$DAGSTER_PG_PASSWORD``.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from memories.cloud_providers import PROFILES, ProviderProfile
from memories.errors import ConfigError

logger = logging.getLogger(__name__)

Provider = Literal["aws", "gcp", "azure", "kubernetes"]
DAGSTER_CHART_VERSION = "1.13.27"
"""Version of Dagster's Helm chart: the pinned dagster release."""
DEFAULT_POOL_LIMITS: Mapping[str, int] = {"raster": 2, "training": 1, "inference": 1, "reports": 2}
"""Slots of each Dagster pool the assets declare (``@asset(pool=...)``)."""
SECRET_KEYS = ("MEMORIES_CATALOG_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
"""Keys of the ``earth-memory-secrets`` Secret every pod reads its credentials from."""
SCHEDULER_PORT = 8786


@dataclass(frozen=True)
class DeploymentResult:
    """What :meth:`CloudDeployment.deploy` did: the files written, the commands, whether it ran them."""

    folder: Path
    files: list[Path]
    commands: list[str]
    applied: bool
    platform: str = "Kubernetes"
    secret_command: str = ""
    """The ``kubectl create secret`` line to run first (secrets by variable, never by value)."""

    def __str__(self) -> str:
        """What a person reads: where the files are and, when nothing was applied, the commands to run."""
        if self.applied:
            return f"Applied the {self.platform} deployment rendered into {self.folder}"
        lines = [f"Rendered the {self.platform} deployment into {self.folder}; to apply it, run:"]
        first = [self.secret_command] if self.secret_command else []
        return "\n".join([*lines, *("  " + c for c in [*first, *self.commands])])


@dataclass
class CloudDeployment:
    """The Earth memory's Dagster deployment and Dask cluster, rendered for one provider.

    ``min_instances``/``max_instances`` bound the Dask workers (each ``worker_threads`` threads,
    ``worker_memory_gib`` GiB); ``region`` is required on aws, gcp and azure.
    """

    provider: Provider = "kubernetes"
    region: str | None = None
    min_instances: int = 1
    max_instances: int = 8
    auto_scaling: bool = True
    image: str = "registry.example.com/earth-memory:0.1.0"
    namespace: str = "earth-memory"
    release: str = "earth-memory"
    bucket: str = "earth-memory"
    node_pool: str = "earthmemory"
    worker_threads: int = 2
    worker_memory_gib: int = 8
    max_concurrent_runs: int = 4
    pool_limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_POOL_LIMITS))
    s3_endpoint_url: str | None = None
    """Overrides the provider's object-store endpoint (e.g. your MinIO or Ceph)."""

    def __post_init__(self) -> None:
        if self.provider not in PROFILES:
            raise ConfigError(f"CloudDeployment provider={self.provider!r}: choose one of {sorted(PROFILES)}")
        if self.profile.needs_region and not self.region:
            raise ConfigError(
                f"CloudDeployment provider={self.provider!r} needs region= (e.g. 'us-west-2', 'europe-west4', "
                "'westeurope'): it sets where the cluster's object store and credentials live"
            )
        if not 0 <= self.min_instances <= self.max_instances or self.max_instances < 1:
            raise ConfigError(
                f"CloudDeployment min_instances={self.min_instances}, max_instances={self.max_instances}: "
                "need 0 <= min_instances <= max_instances and max_instances >= 1"
            )
        bad = {k: v for k, v in self.pool_limits.items() if not isinstance(v, int) or v < 1}
        if bad or set(self.pool_limits) != set(DEFAULT_POOL_LIMITS):
            raise ConfigError(
                f"CloudDeployment pool_limits={dict(self.pool_limits)}: give a whole number >= 1 for each of "
                f"{sorted(DEFAULT_POOL_LIMITS)}"
            )

    @property
    def profile(self) -> ProviderProfile:
        """The provider's profile."""
        return PROFILES[self.provider]

    @property
    def dask_cluster_name(self) -> str:
        """Name of the DaskCluster; the operator names its scheduler Service ``<name>-scheduler``."""
        return f"{self.release}-dask"

    @property
    def scheduler_address(self) -> str:
        """``tcp://`` address of the Dask scheduler inside the namespace."""
        return f"tcp://{self.dask_cluster_name}-scheduler:{SCHEDULER_PORT}"

    @property
    def endpoint(self) -> str | None:
        """The object store's S3 endpoint (None: AWS S3)."""
        url = self.s3_endpoint_url or self.profile.s3_endpoint_url
        return url.format(namespace=self.namespace) if url else None

    def memories_settings(self, *, endpoint: bool = True) -> dict[str, Any]:
        """The ``MEMORIES_CONFIG`` of every pod (see :mod:`memories.config`)."""
        storage: dict[str, Any] = {"root": f"s3://{self.bucket}/store"}
        if endpoint and self.endpoint:
            storage["s3_endpoint_url"] = self.endpoint
        return {
            "storage": storage,
            "compute": {"dask_scheduler": self.scheduler_address, "chunk_px": 1024},
            "catalog": {"profile": self.profile.catalog_profile},
        }

    def render(self, application: str = "dagster_project.definitions") -> dict[str, list[dict[str, Any]]]:
        """File name -> Kubernetes documents (``values.yaml`` holds one mapping: the Helm values).

        ``application`` is the code location: a module (``dagster_project.definitions``) or a
        Python file inside the image (``my_application.py``).
        """
        config = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{self.release}-config", "labels": _labels()},
            "data": {"memories.yaml": yaml.safe_dump(self.memories_settings(), sort_keys=False)},
        }
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace, "labels": _labels()}}
        return {
            "namespace.yaml": [namespace],
            "memories-config.yaml": [config],
            "values.yaml": [self.helm_values(application)],
            "dask-cluster.yaml": self.dask_documents(),
            "pool-limits-job.yaml": [self.pool_limits_job()],
        }

    def helm_values(self, application: str = "dagster_project.definitions") -> dict[str, Any]:
        """Values for Dagster's Helm chart (chart ``dagster``, version :data:`DAGSTER_CHART_VERSION`)."""
        repository, tag = _split_image(self.image)
        target = ["-f", application] if application.endswith(".py") else ["-m", application]
        return {
            "dagsterWebserver": {
                "replicaCount": 1,
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
            },
            "dagster-user-deployments": {
                "enabled": True,
                "enableSubchart": True,
                "deployments": [
                    {
                        "name": self.release,
                        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
                        "dagsterApiGrpcArgs": [*target, "--location-name", "earth_memory"],
                        "port": 3030,
                        "includeConfigInLaunchedRuns": {"enabled": True},
                        "env": self._env(),
                        "envSecrets": [{"name": f"{self.release}-secrets"}],
                        "volumes": [{"name": "memories-config", "configMap": {"name": f"{self.release}-config"}}],
                        "volumeMounts": [_config_mount()],
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
                    }
                ],
            },
            "runLauncher": {
                "type": "K8sRunLauncher",
                "config": {
                    "k8sRunLauncher": {
                        "envSecrets": [{"name": f"{self.release}-secrets"}],
                        "runK8sConfig": {
                            "containerConfig": {
                                "resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}
                            }
                        },
                    }
                },
            },
            "postgresql": {
                "enabled": True,
                "postgresqlUsername": "dagster",
                "postgresqlDatabase": "dagster",
                "service": {"port": 5432},
            },
            "generatePostgresqlPasswordSecret": True,
            "dagsterDaemon": {
                "enabled": True,
                "runCoordinator": {
                    "enabled": True,
                    "type": "QueuedRunCoordinator",
                    "config": {
                        "queuedRunCoordinator": {
                            "maxConcurrentRuns": self.max_concurrent_runs,
                            "dequeueIntervalSeconds": 2,
                        }
                    },
                },
                "runMonitoring": {"enabled": True},
            },
            "concurrency": {"enabled": True, "pools": {"defaultLimit": 1, "granularity": "op"}},
            "telemetry": {"enabled": False},
        }

    def dask_documents(self) -> list[dict[str, Any]]:
        """The DaskCluster and, with ``auto_scaling``, its DaskAutoscaler (dask-kubernetes operator)."""
        name = self.dask_cluster_name
        worker, scratch = self._dask_worker()
        scheduler = _dask_scheduler(self.image)
        cluster = {
            "apiVersion": "kubernetes.dask.org/v1",
            "kind": "DaskCluster",
            "metadata": {"name": name, "labels": _labels()},
            "spec": {
                "worker": {
                    "replicas": self.min_instances if self.auto_scaling else self.max_instances,
                    "spec": {
                        "nodeSelector": {self.profile.node_pool_label: self._node_pool_value()},
                        "containers": [worker],
                        "volumes": [_config_volume(self.release), scratch],
                    },
                },
                "scheduler": {
                    "spec": {"containers": [scheduler]},
                    "service": {
                        "type": "ClusterIP",
                        "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
                        "ports": [
                            {"name": "tcp-comm", "protocol": "TCP", "port": SCHEDULER_PORT, "targetPort": "tcp-comm"},
                            {"name": "http-dashboard", "protocol": "TCP", "port": 8787, "targetPort": "http-dashboard"},
                        ],
                    },
                },
            },
        }
        if not self.auto_scaling:
            return [cluster]
        autoscaler = {
            "apiVersion": "kubernetes.dask.org/v1",
            "kind": "DaskAutoscaler",
            "metadata": {"name": name, "labels": _labels()},
            "spec": {"cluster": name, "minimum": self.min_instances, "maximum": self.max_instances},
        }
        return [cluster, autoscaler]

    def _dask_worker(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The Dask worker container and its ephemeral scratch volume (twice the worker's memory)."""
        memory = self.worker_memory_gib
        worker = {
            "name": "worker",
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "args": ["dask", "worker", "--name", "$(DASK_WORKER_NAME)", "--nthreads", str(self.worker_threads)]
            + ["--memory-limit", f"{memory - 1}GiB", "--local-directory", "/scratch"]
            + ["--dashboard", "--dashboard-address", "8788"],
            "env": self._env(),
            "envFrom": [{"secretRef": {"name": f"{self.release}-secrets"}}],
            "ports": [{"name": "http-dashboard", "containerPort": 8788, "protocol": "TCP"}],
            "resources": {
                "requests": {"cpu": str(self.worker_threads), "memory": f"{memory}Gi"},
                "limits": {"memory": f"{memory}Gi"},
            },
            "volumeMounts": [_config_mount(), {"name": "scratch", "mountPath": "/scratch"}],
        }
        scratch = {
            "name": "scratch",
            "ephemeral": {
                "volumeClaimTemplate": {
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": self.profile.storage_class,
                        "resources": {"requests": {"storage": f"{2 * memory}Gi"}},
                    }
                }
            },
        }
        return worker, scratch

    def pool_limits_job(self) -> dict[str, Any]:
        """A Job setting each pool's limit with ``set-pool-limits`` (deploy/set-pool-limits.sh in the image).

        The sizes travel as the ``MEMORIES_POOL_*`` variables that ``dagster_project.instance`` reads.
        """
        container = {
            "name": "set-pool-limits",
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["set-pool-limits"],
            "env": [
                {"name": "DAGSTER_HOME", "value": "/opt/dagster/dagster_home"},
                *({"name": f"MEMORIES_POOL_{pool.upper()}", "value": str(n)} for pool, n in self.pool_limits.items()),
                {
                    "name": "DAGSTER_PG_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "dagster-postgresql-secret", "key": "postgresql-password"}},
                },
            ],
            "volumeMounts": [
                {
                    "name": "dagster-instance",
                    "mountPath": "/opt/dagster/dagster_home/dagster.yaml",
                    "subPath": "dagster.yaml",
                    "readOnly": True,
                }
            ],
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        }
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"{self.release}-pool-limits", "labels": _labels()},
            "spec": {
                "backoffLimit": 3,
                "ttlSecondsAfterFinished": 3600,
                "template": {
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "containers": [container],
                        "volumes": [
                            {"name": "dagster-instance", "configMap": {"name": f"{self.release}-dagster-instance"}}
                        ],
                    }
                },
            },
        }

    def write(self, folder: str | os.PathLike[str], application: str = "dagster_project.definitions") -> list[Path]:
        """Write the rendered files into ``folder`` (created); returns their paths."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, docs in self.render(application).items():
            path = out / name
            path.write_text(f"# {self.profile.platform}: rendered by memories.cloud.CloudDeployment\n" + _dump(docs))
            written.append(path)
        return written

    def commands(self, folder: str | os.PathLike[str]) -> list[list[str]]:
        """The ``kubectl``/``helm`` commands that apply the files in ``folder``, in order.

        The ``helm`` command reads the PostgreSQL password as a values file on standard input (``-f -``).
        """
        f = Path(folder)
        ns = ["-n", self.namespace]
        return [
            ["kubectl", "apply", "-f", str(f / "namespace.yaml")],
            ["kubectl", "apply", *ns, "-f", str(f / "memories-config.yaml")],
            ["helm", "repo", "add", "dagster", "https://dagster-io.github.io/helm", "--force-update"],
            ["helm", "upgrade", "--install", self.release, "dagster/dagster", "--version", DAGSTER_CHART_VERSION]
            + [*ns, "-f", str(f / "values.yaml"), "-f", "-"],
            ["kubectl", "apply", *ns, "-f", str(f / "dask-cluster.yaml")],
            ["kubectl", "delete", *ns, "job", f"{self.release}-pool-limits", "--ignore-not-found"],
            ["kubectl", "apply", *ns, "-f", str(f / "pool-limits-job.yaml")],
        ]

    def secret_command(self) -> str:
        """The shell command that creates the pods' Secret from the environment (run once, before deploy)."""
        literals = " ".join(f'--from-literal={k}="${k}"' for k in SECRET_KEYS)
        return f"kubectl -n {self.namespace} create secret generic {self.release}-secrets {literals}"

    def deploy(
        self,
        application: str = "dagster_project.definitions",
        output_dir: str | os.PathLike[str] = "deployment",
        apply: bool | None = None,
    ) -> DeploymentResult:
        """Render into ``output_dir``; apply with kubectl and helm when both are on the PATH (or ``apply=True``).

        Otherwise print the commands to run. Applying needs ``$DAGSTER_PG_PASSWORD`` (the chart's
        PostgreSQL password, passed on standard input) and the Secret of :meth:`secret_command`.

        Raises:
            ConfigError: ``apply=True`` without kubectl or helm on the PATH, or without ``DAGSTER_PG_PASSWORD``.
            subprocess.CalledProcessError: a command failed (its output is in the exception).
        """
        files = self.write(output_dir, application)
        steps = self.commands(output_dir)
        shell = [_shell_line(argv) for argv in steps]
        missing = [tool for tool in ("kubectl", "helm") if shutil.which(tool) is None]
        if apply is None:
            apply = not missing
        if not apply:
            result = DeploymentResult(
                Path(output_dir), files, shell, False, self.profile.platform, self.secret_command()
            )
            logger.info("%s", result)  # and returned: print(result) in a notebook shows the commands
            return result
        if missing:
            raise ConfigError(f"CloudDeployment.deploy(apply=True): {' and '.join(missing)} not on PATH; install it")
        password = os.environ.get("DAGSTER_PG_PASSWORD")
        if not password:
            raise ConfigError("CloudDeployment.deploy: set DAGSTER_PG_PASSWORD (the Dagster PostgreSQL password)")
        secret_values = yaml.safe_dump({"postgresql": {"postgresqlPassword": password}})
        for argv in steps:
            stdin = secret_values if argv[-2:] == ["-f", "-"] else None
            subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)
        return DeploymentResult(Path(output_dir), files, shell, True, self.profile.platform)

    def _env(self) -> list[dict[str, str]]:
        env = [{"name": "MEMORIES_CONFIG", "value": "/opt/earth-memory/config/memories.yaml"}]
        # S3 clients need a region: the bucket's on AWS; GCS's S3 API takes "auto".
        if self.provider == "aws":
            env.append({"name": "AWS_DEFAULT_REGION", "value": str(self.region)})
        elif self.provider == "gcp":
            env.append({"name": "AWS_DEFAULT_REGION", "value": "auto"})
        return env

    def _node_pool_value(self) -> str:
        return "linux" if self.provider == "kubernetes" else self.node_pool


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/part-of": "earth-memory"}


def _config_mount() -> dict[str, Any]:
    return {"name": "memories-config", "mountPath": "/opt/earth-memory/config", "readOnly": True}


def _config_volume(release: str) -> dict[str, Any]:
    return {"name": "memories-config", "configMap": {"name": f"{release}-config"}}


def _split_image(image: str) -> tuple[str, str]:
    repository, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        raise ConfigError(f"CloudDeployment image={image!r}: give repository:tag, e.g. registry.example.com/app:0.1.0")
    return repository, tag


def _dump(docs: list[dict[str, Any]]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def _shell_line(argv: list[str]) -> str:
    line = shlex.join(argv)
    if argv[-2:] == ["-f", "-"]:
        return 'printf \'postgresql:\\n  postgresqlPassword: "%s"\\n\' "$DAGSTER_PG_PASSWORD" | ' + line
    return line


def _dask_scheduler(image: str) -> dict[str, Any]:
    """The Dask scheduler container, probed on its dashboard's /health."""
    probe = {"httpGet": {"port": "http-dashboard", "path": "/health"}}
    scheduler = {
        "name": "scheduler",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["dask", "scheduler", "--port", str(SCHEDULER_PORT), "--dashboard-address", ":8787"],
        "ports": [
            {"name": "tcp-comm", "containerPort": SCHEDULER_PORT, "protocol": "TCP"},
            {"name": "http-dashboard", "containerPort": 8787, "protocol": "TCP"},
        ],
        "readinessProbe": {**probe, "initialDelaySeconds": 5, "periodSeconds": 10},
        "livenessProbe": {**probe, "initialDelaySeconds": 15, "periodSeconds": 20},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    }
    return scheduler
