"""The Dask resource joins an existing scheduler by address, or starts its own."""

from __future__ import annotations

import dask.array as da
from dagster import build_init_resource_context
from distributed import LocalCluster

from resources import DaskClusterResource


def _sum_with(resource: DaskClusterResource) -> tuple[float, str]:
    with resource.yield_for_execution(build_init_resource_context()) as r, r.compute() as client:
        return float(da.ones((1000, 1000), chunks=250).sum().compute()), client.scheduler.address


def test_joins_an_existing_scheduler_by_address():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        total, address = _sum_with(DaskClusterResource(scheduler_address=cluster.scheduler_address))
        assert total == 1e6
        assert address == cluster.scheduler_address


def test_starts_a_local_cluster_without_an_address():
    total, address = _sum_with(DaskClusterResource(n_threads=2))
    assert total == 1e6 and address.startswith("inproc://")
