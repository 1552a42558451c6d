"""The tiered store resource: where the warm, cold and glacier tiers live and how objects are scored."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from memories.config import config
from memories.memory.tiers import TieredStore, TierThresholds, TierWeights
from memories.store.paths import StorageRoot


class TieredStorageResource(ConfigurableResource):  # type: ignore[misc]
    """Hot (memory), warm (local folder), cold (S3 prefix) and glacier (S3 prefix, archive class) tiers.

    S3 credentials come from the environment (``AWS_ACCESS_KEY_ID``, ...), never from this configuration.
    """

    warm_root: str = Field(
        default_factory=lambda: "file://" + StorageRoot(config.storage.root).cache_dir("tiers"),
        description="file:// URI of the warm tier (also holds the access statistics); default: the storage "
        "root's local cache folder",
    )
    cold_root: str | None = Field(default=None, description="s3:// (or file://) URI of the cold tier; empty: none")
    glacier_root: str | None = Field(default=None, description="s3:// URI of the archive tier; empty: none")
    s3_endpoint_url: str | None = Field(
        default_factory=lambda: config.storage.s3_endpoint_url, description="S3-compatible endpoint"
    )
    glacier_storage_class: str = Field(default="GLACIER", description="GLACIER, DEEP_ARCHIVE or GLACIER_IR")
    hot_capacity_bytes: int = Field(default=64 * 2**20, description="byte cap of the in-memory tier")
    weight_recency: float = 0.4
    weight_frequency: float = 0.3
    weight_size: float = 0.1
    weight_relevance: float = 0.2
    recency_half_life_days: float = 30.0
    threshold_hot: float = 0.7
    threshold_warm: float = 0.45
    threshold_cold: float = 0.2

    def store(self) -> TieredStore:
        """The tiered store of this run (close it when done)."""

        def root(uri: str | None) -> StorageRoot | None:
            return StorageRoot(uri, self.s3_endpoint_url) if uri else None

        return TieredStore(
            warm=StorageRoot(self.warm_root),
            cold=root(self.cold_root),
            glacier=root(self.glacier_root),
            hot_capacity_bytes=self.hot_capacity_bytes,
            weights=TierWeights(
                self.weight_recency,
                self.weight_frequency,
                self.weight_size,
                self.weight_relevance,
                recency_half_life_days=self.recency_half_life_days,
            ),
            thresholds=TierThresholds(self.threshold_hot, self.threshold_warm, self.threshold_cold),
            glacier_storage_class=self.glacier_storage_class,
        )
