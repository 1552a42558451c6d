"""What each cloud provider's Kubernetes needs that another's does not: one table, read by ``memories.cloud``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PROFILES", "ProviderProfile"]


@dataclass(frozen=True)
class ProviderProfile:
    """What one provider's Kubernetes needs that another's does not."""

    platform: str
    """The managed Kubernetes, for people: ``Amazon EKS``."""
    storage_class: str
    """StorageClass of the Dask workers' spill disk (the provider's default CSI class)."""
    node_pool_label: str
    """Node label whose value names the node pool the Dask workers run on."""
    s3_endpoint_url: str | None
    """Endpoint of the object store's S3 API; None: AWS S3. ``{namespace}`` is filled in."""
    catalog_profile: str
    """STAC catalog profile (memories.earth.stac_profiles) nearest to the provider's data."""
    needs_region: bool = True


_MINIO = "http://minio.{namespace}.svc.cluster.local:9000"
PROFILES: Mapping[str, ProviderProfile] = {
    "aws": ProviderProfile("Amazon EKS", "gp3", "eks.amazonaws.com/nodegroup", None, "earth-search"),
    "gcp": ProviderProfile(
        "Google GKE", "standard-rwo", "cloud.google.com/gke-nodepool", "https://storage.googleapis.com", "earth-search"
    ),
    "azure": ProviderProfile(
        "Azure AKS", "managed-csi", "kubernetes.azure.com/agentpool", _MINIO, "planetary-computer"
    ),
    "kubernetes": ProviderProfile(
        "Kubernetes", "standard", "kubernetes.io/os", _MINIO, "earth-search", needs_region=False
    ),
}
