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


def test_small_tile_months_compute_on_threads_and_large_ones_on_the_cluster():
    import dask

    resource = DaskClusterResource(n_threads=2, threads_below_px=512 * 512)
    with resource.yield_for_execution(build_init_resource_context()) as r:
        with r.compute(pixels=256 * 256) as client:
            assert client is None and dask.config.get("scheduler") == "threads"
            assert float(da.ones((100, 100), chunks=50).sum().compute()) == 1e4
        with r.compute(pixels=512 * 512) as client:
            assert client is not None and client.scheduler.address.startswith("inproc://")
        seen = r.each(lambda _: dask.config.get("scheduler"), [1, 2], pixels=64 * 64)
        assert seen == ["threads", "threads"]
    never = DaskClusterResource(n_threads=2, threads_below_px=0)
    assert not never.on_threads(1)


def test_a_configured_scheduler_is_used_whatever_the_size():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        resource = DaskClusterResource(scheduler_address=cluster.scheduler_address, threads_below_px=10**9)
        assert not resource.on_threads(64 * 64)
        with resource.yield_for_execution(build_init_resource_context()) as r, r.compute(pixels=64 * 64) as client:
            assert client.scheduler.address == cluster.scheduler_address
