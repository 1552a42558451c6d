"""Compute resources: the Dask cluster of the raster math, the model runtime."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from memories.config import ModelSettings, config

T = TypeVar("T")
R = TypeVar("R")


class DaskClusterResource(ConfigurableResource):  # type: ignore[misc]
    """A Dask client for the run: joins ``scheduler_address`` or starts a local cluster.

    The local cluster runs in-process with threads (raster math releases the GIL) and shares
    memory with the run; it starts once per process and size (about a second) and serves every
    later run of the process, and closes when the process exits.
    """

    scheduler_address: str | None = Field(
        default_factory=lambda: config.compute.dask_scheduler, description="tcp://host:8786 of an existing scheduler"
    )
    n_threads: int = Field(
        default_factory=lambda: config.compute.dask_threads, description="threads of the local cluster"
    )
    memory_limit: str = Field(default="8GiB", description="memory limit of the local worker")
    chunk_px: int = Field(default_factory=lambda: config.compute.chunk_px, description="spatial chunk side, pixels")
    threads_below_px: int = Field(
        default_factory=lambda: config.compute.threads_below_px,
        description="without scheduler_address: tile-months of fewer pixels compute on dask's threaded "
        "scheduler in the run's process (the local cluster's cost per graph exceeds their math); 0: never",
    )
    partitions_at_once: int = Field(
        default=2,
        ge=1,
        description="tile-months of one run computed at once on the cluster (their reads, math and writes "
        "interleave); 1: one after the other",
    )

    _client: Any = PrivateAttr(default=None)

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[DaskClusterResource]:
        """Start or join the cluster for the run, and close it after."""
        from distributed import Client

        if self.scheduler_address:
            with Client(self.scheduler_address, set_as_default=False) as client:
                self._client = client
                yield self
            return
        self._client = _local_client(self.n_threads, self.memory_limit)
        try:
            yield self
        finally:
            self._client = None

    def each(self, fn: Callable[[T], R], items: Sequence[T], *, pixels: int | None = None) -> list[R]:
        """``fn`` of every item (a run's tile-months), ``partitions_at_once`` at a time, with this cluster
        as dask's scheduler; results in the order of ``items``. A failure is raised once the running ones end.

        ``pixels``: the largest item's pixel count; under ``threads_below_px`` (and with no
        ``scheduler_address``) the items compute on dask's threaded scheduler instead (:meth:`compute`).
        ``fn`` must not enter :meth:`compute` itself: dask's scheduler setting is process-wide.
        """
        with self.compute(pixels=pixels):
            if self.partitions_at_once <= 1 or len(items) <= 1:
                return [fn(x) for x in items]
            with ThreadPoolExecutor(self.partitions_at_once, thread_name_prefix="partition") as pool:
                return list(pool.map(fn, items))

    def on_threads(self, pixels: int | None) -> bool:
        """Whether work of ``pixels`` pixels computes on the process's threads rather than the cluster."""
        return not self.scheduler_address and pixels is not None and pixels < self.threads_below_px

    @contextmanager
    def compute(self, *, pixels: int | None = None) -> Iterator[Any]:
        """Make this cluster dask's scheduler inside the block (yields the client), or, for work of fewer
        than ``threads_below_px`` pixels and no ``scheduler_address``, dask's threaded scheduler with
        ``n_threads`` threads (yields None)."""
        if self.on_threads(pixels):
            import dask

            with dask.config.set(scheduler="threads", num_workers=self.n_threads):
                yield None
            return
        if self._client is None:
            yield None
            return
        with self._client.as_current():
            import dask

            with dask.config.set(scheduler=self._client):
                yield self._client


_LOCAL: dict[tuple[int, str], Any] = {}
"""(threads, memory limit) -> the process's client of its in-process LocalCluster."""
_LOCAL_LOCK = threading.Lock()


def _local_client(n_threads: int, memory_limit: str) -> Any:
    """The process's client of an in-process LocalCluster of this size, started on first use."""
    from distributed import Client, LocalCluster

    key = (n_threads, memory_limit)
    with _LOCAL_LOCK:
        client = _LOCAL.get(key)
        if client is None or client.status != "running":
            cluster = LocalCluster(
                n_workers=1,
                threads_per_worker=n_threads,
                processes=False,
                memory_limit=memory_limit,
                dashboard_address=None,
            )
            client = _LOCAL[key] = Client(cluster, set_as_default=False)
            atexit.register(_close, client, cluster)
        return client


def _close(client: Any, cluster: Any) -> None:
    """Close a client and its cluster (at exit); errors of an interpreter shutting down are ignored."""
    for part in (client, cluster):
        try:
            part.close()
        except Exception:  # noqa: S112 - best effort at exit
            continue


class ModelRuntimeResource(ConfigurableResource):  # type: ignore[misc]
    """How models train and predict: accelerator, training sizes, and the model ids inference uses."""

    accelerator: str = Field(default="auto", description="auto | cpu | gpu (Lightning)")
    width: int = Field(default_factory=lambda: config.model.width)
    max_epochs: int = Field(default_factory=lambda: config.model.max_epochs)
    patch_px: int = Field(default_factory=lambda: config.model.patch_px)
    patches_per_scene: int = Field(default_factory=lambda: config.model.patches_per_scene)
    seed: int = Field(default_factory=lambda: config.model.seed)
    max_training_months: int = Field(default=6, description="months per tile used to train, spread over the year")
    mc_passes: int = Field(default=8, ge=1, description="Monte-Carlo dropout passes per land-cover prediction")
    change_steps: int = Field(default=120, ge=1, description="optimizer steps of the change detector")
    change_width: int = Field(default=8, ge=4, description="channels of the change detector's first level")
    importance_repeats: int = Field(
        default=2, ge=0, description="shuffles per band of the held-out band importance at training; 0 skips it"
    )
    land_cover_model: str = Field(
        default_factory=lambda: config.model.land_cover_model,
        description="model id land_cover predicts with: land_cover, land_cover:3, land_cover@latest, land_cover@best",
    )
    change_model: str = Field(
        default_factory=lambda: config.model.change_model,
        description="model id of the learned change detector change_map uses",
    )

    def model_settings(self) -> ModelSettings:
        """The library's ModelSettings of this runtime."""
        return ModelSettings(
            width=self.width,
            max_epochs=self.max_epochs,
            patch_px=self.patch_px,
            patches_per_scene=self.patches_per_scene,
            seed=self.seed,
            land_cover_model=self.land_cover_model,
            change_model=self.change_model,
        )
