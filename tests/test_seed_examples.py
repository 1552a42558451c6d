"""The seed's examples of the memory, application and cross-cutting layers, as written but for place, dates, address.

The configured memory is the session's ``app_memory`` (tile 33TVM, 2023-01..2023-08
of the sample world: real composites, indices, GIS layers as they stood each month,
census, historical map; land cover = the rasterized truth), pointed at with
``update_config`` as a reader would. The seed's San Francisco address becomes one of
the tile's addressed buildings (the featured one nearest the flood), its dates the
memory's months. Every example is checked against the world's ground truth or an
independent computation, not only for running. The memory example writes to a
fresh folder (it stores data); the model example is ``tests/memories/ai/test_seed_models.py``
(it needs the trained change detector of that package), the acquisition example
``tests/test_seed_examples_acquisition.py``.

Events of this world: clear-cut 2023-04-08, new district 2023-05-14, flood
2023-07-02..07-23.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pytest
import xarray as xr
from shapely.geometry import Point

from memories.config import reset_config, update_config

FLOOD_MONTH, AFTER_FLOOD = "2023-07", "2023-08"
RADIUS_M = 500.0


@pytest.fixture(scope="module")
def configured(app_memory: Any) -> Iterator[Any]:
    """The configured memory is ``app_memory`` (as a reader points the library at a demo's memory)."""
    update_config(
        {"storage.root": app_memory.root.uri, "storage.catalog_path": str(app_memory.path / "catalog.sqlite")}
    )
    try:
        yield app_memory
    finally:
        reset_config()


@pytest.fixture(scope="module")
def address(configured: Any) -> str:
    """The featured address of the tile whose 500 m circle the flood covers most."""
    from memories.applications import RealEstateAgent

    agent = RealEstateAgent()
    [flood] = configured.events("flood")
    best = None
    for a in agent.featured_properties(configured.tile, configured.months[-1]):
        p = agent.locate(a)
        overlap = flood.geometry.intersection(Point(p.x, p.y).buffer(RADIUS_M)).area
        if best is None or overlap > best[0]:
            best = (overlap, a)
    assert best is not None and best[0] > 0, "no featured property near the flood"
    return best[1]


# -- Application layer ---------------------------------------------------------------------------


def test_application_example_real_estate_agent(configured: Any, address: str, capsys: Any) -> None:
    async def example() -> Any:
        # --- the seed's example (address and time range on the test memory) ---
        from memories.applications import RealEstateAgent

        # Initialize application
        agent = RealEstateAgent()

        # Analyze a property
        analysis = await agent.analyze_property(
            address=address,
            time_range=("2023-01-01", "2023-08-31"),
            include_environmental=True,
            include_neighborhood=True,
        )

        # Get insights and recommendations
        print(f"Property Timeline: {analysis.timeline}")
        print(f"Environmental Factors: {analysis.environmental_factors}")
        print(f"Neighborhood Changes: {analysis.neighborhood_changes}")
        print(f"Future Projections: {analysis.future_projections}")
        # --- end of the example ---
        return analysis

    analysis = asyncio.run(example())
    printed = capsys.readouterr().out
    assert printed.count("Property Timeline: [{") == 1 and "Future Projections: {" in printed

    # Timeline: every month held; the NDVI mean of the first month equals one computed here.
    assert [t["month"] for t in analysis.timeline] == configured.months
    p = analysis.property
    g = configured.grid
    inside = (g.x[None, :] - p.x) ** 2 + (g.y[:, None] - p.y) ** 2 <= RADIUS_M**2
    ndvi = configured.view.raster("spectral_indices", configured.tile, configured.months[0])["ndvi"].values[inside]
    assert analysis.timeline[0]["ndvi_mean"]["value"] == pytest.approx(float(np.nanmean(ndvi)), abs=1e-6)
    shares = analysis.timeline[0]["class_shares"]
    assert sum(v for v in shares.values() if v is not None) == pytest.approx(1.0)

    # Environmental factors: the flood of July, and no water left in August.
    flood = analysis.environmental_factors["flood_exposure"]
    assert flood["flooded_months"] == [FLOOD_MONTH] and flood["statement"] == f"flooded in {FLOOD_MONTH}"
    new_water = {q["period"]: q["value"] for q in flood["new_water_area"]}
    [truth] = configured.events("flood")
    truth_m2 = truth.geometry.intersection(Point(p.x, p.y).buffer(RADIUS_M, quad_segs=128)).area
    # the monthly median composite sees the 21-day flood in part of its scenes (tests/.../test_real_estate.py)
    assert 0.2 * truth_m2 <= new_water[FLOOD_MONTH] <= 1.2 * truth_m2 + 500.0
    assert new_water[AFTER_FLOOD] < 500.0

    # Neighbourhood changes: the buildings the GIS truth dates inside the period, in the circle.
    buildings = gpd.read_file(configured.world.gis_path, layer="buildings", engine="pyogrio")
    buildings = buildings[buildings["tile_id"] == configured.tile].to_crs(g.crs)
    dated = buildings[buildings["start_date"].notna() & (buildings["start_date"].astype(str) > "2023-01-31")]
    circle = Point(p.x, p.y).buffer(RADIUS_M, quad_segs=128)
    n_new = int(dated.geometry.representative_point().within(circle).sum())
    counts = analysis.neighborhood_changes["buildings"]
    assert counts["end"]["value"] - counts["start"]["value"] == n_new

    # Future projections: six months after August, inside their 95 % intervals.
    proj = analysis.future_projections
    assert proj["available"], proj.get("reason")
    assert [f["month"] for f in proj["forecast"]][:2] == ["2023-09", "2023-10"] and len(proj["forecast"]) == 6
    assert all(f["lower"] < f["ndvi"]["value"] < f["upper"] for f in proj["forecast"])


def test_application_example_the_other_four_are_awaitable(configured: Any) -> None:
    from memories.applications import DisasterAnalyzer, EnvironmentalMonitor, HistoricalReconstructor, UrbanPlanner

    tile = configured.tile

    async def example() -> list[Any]:
        return list(
            await asyncio.gather(
                UrbanPlanner().aanalyze(tile, "2023-04", "2023-06"),
                EnvironmentalMonitor().aanalyze(tile, "2023-05"),
                HistoricalReconstructor().areconstruct(tile, "2023-02-20"),
                DisasterAnalyzer().aanalyze(tile),
            )
        )

    urban, environmental, historical, disaster = asyncio.run(example())
    [district] = configured.events("new_district")
    assert urban["tile_total"]["builtup_growth_ha"] == pytest.approx(district.geometry.area / 1e4, abs=0.1)
    clear_cut = configured.world.events(tile)
    [cut] = [e for e in clear_cut if e.kind == "clear_cut"]
    assert environmental.numbers["forest_loss"]["area_ha"] == pytest.approx(cut.geometry.area / 1e4, rel=0.15)
    truth = configured.world.landcover_truth(tile, datetime(2023, 2, 20, tzinfo=UTC))
    assert historical["land_cover_month"] == "2023-02"
    assert float((historical["land_cover"] == truth).mean()) >= 0.95
    assert disaster["event_month"] == FLOOD_MONTH


# -- Memory layer ----------------------------------------------------------------------------------


def test_memory_example(configured: Any, tmp_path: Any) -> None:
    """The seed's memory example on the test memory's composites and buildings, stored in a fresh folder."""
    from memories.memory.view import MemoryView

    view = MemoryView()
    composites = []
    for m in configured.months[:4]:
        c = view.raster("surface_reflectance", configured.tile, m)["reflectance"]
        c = c.isel(time=0) if "time" in c.dims else c
        composites.append(c.sel(band=["blue", "green", "red", "nir"]))
    imagery = [
        xr.DataArray(
            c.values,
            dims=("band", "y", "x"),
            coords={"band": ["B2", "B3", "B4", "B8"], "y": c.y.values, "x": c.x.values},
            attrs={"cloud_cover": float(i), "bands": ["B2", "B3", "B4", "B8"]},
        )
        for i, c in enumerate(composites)
    ]
    layer = view.layers(configured.tile, configured.months[-1], ["buildings"])["buildings"].to_crs("EPSG:4326")
    rng = np.random.default_rng(3)
    layer = layer.assign(type="building", height=rng.uniform(3, 120, len(layer)).round(1), year_built=2000)
    layer = layer.iloc[:40]  # 40 of the tile's buildings keep the example quick (each store is a write)
    buildings = [row for _, row in layer.iterrows()]
    lon, lat = layer.union_all().centroid.coords[0]
    update_config({"storage.root": (tmp_path / "store").as_uri(), "storage.catalog_path": str(tmp_path / "c.sqlite")})
    try:
        # --- the seed's example (dates and place on the test memory) ---
        from memories.memory import SpatialMemoryManager, TemporalMemoryManager

        temporal_memory = TemporalMemoryManager()
        spatial_memory = SpatialMemoryManager()

        for i, image in enumerate(imagery):
            acquisition_date = datetime(2023, 1, 1) + timedelta(days=31 * i)
            temporal_memory.store(
                data=image,
                valid_time=(acquisition_date, acquisition_date + timedelta(days=30)),
                metadata={"source": "sentinel-2", "cloud_cover": image.cloud_cover, "bands": image.bands},
            )

        for building in buildings:
            spatial_memory.store(
                data=building,
                geometry=building.geometry,
                metadata={"type": building.type, "height": building.height, "year_built": building.year_built},
            )

        historical_states = temporal_memory.query(
            time_range=(datetime(2023, 2, 1), datetime(2023, 3, 15)),
            as_of=datetime.now(UTC),  # the seed's 2023-01-01 is before this test wrote anything
        )

        nearby_features = spatial_memory.query(
            location=(lat, lon),
            radius_km=2,
            filter=lambda x: x.metadata["type"] == "building" and x.metadata["height"] > 50,
        )
        # --- end of the example ---
    finally:
        update_config(
            {"storage.root": configured.root.uri, "storage.catalog_path": str(configured.path / "catalog.sqlite")}
        )
    # Images 1 (1 Feb) and 2 (4 Mar) overlap 1 Feb..15 Mar; image 0 ends on 31 January.
    assert [r.metadata["cloud_cover"] for r in historical_states] == [1.0, 2.0]
    for r in historical_states:
        xr.testing.assert_equal(r.data.load(), imagery[int(r.metadata["cloud_cover"])])
    here = gpd.GeoSeries([Point(lon, lat)], crs=4326).to_crs(configured.grid.crs)[0]
    metric = layer.to_crs(configured.grid.crs)
    truth = metric[(metric["height"] > 50) & (metric.geometry.distance(here) <= 2000.0)]
    assert nearby_features and len(nearby_features) == len(truth)
    assert sorted(x.metadata["height"] for x in nearby_features) == sorted(truth["height"])


# -- Cross-cutting concerns ------------------------------------------------------------------------


def test_configuration_example(configured: Any) -> None:
    # --- the seed's example ---
    from memories.config import config, update_config

    # Update configuration
    update_config(
        {"data_sources.satellite.default_provider": "sentinel", "processing.use_gpu": True, "storage.cache_size_gb": 5}
    )
    # --- end of the example ---
    from memories.ai.devices import accelerator_for
    from memories.cache import Cache

    assert config.data_sources.satellite.default_provider == "sentinel" and config.catalog.profile == "embedded"
    assert config.processing.use_gpu is True and accelerator_for("auto") == "auto"
    assert Cache(name="seed_config").max_bytes == 5 * 2**30  # caches given no cap take storage.cache_size_gb


def test_logging_example(caplog: Any) -> None:
    with caplog.at_level(logging.DEBUG, logger="memories"):
        # --- the seed's example ---
        from memories.logging import logger

        # Log events at different levels
        logger.debug("Detailed debugging information")
        logger.info("General information about operation")
        logger.warning("Warning about potential issues")
        logger.error("Error that occurred during operation")
        # --- end of the example ---
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("memories", "DEBUG", "Detailed debugging information"),
        ("memories", "INFO", "General information about operation"),
        ("memories", "WARNING", "Warning about potential issues"),
        ("memories", "ERROR", "Error that occurred during operation"),
    ]


def test_error_handling_example(configured: Any, caplog: Any) -> None:
    from memories.applications import RealEstateAgent

    agent = RealEstateAgent()
    data = "ndvii"  # a variable the spectral indices do not hold

    async def process_data(variable: str) -> Any:
        return await asyncio.to_thread(agent.array, "spectral_indices", configured.tile, "2023-03", variable)

    async def example() -> str:
        handled = "none"
        # --- the seed's example ---
        from memories.errors import DataSourceError, ProcessingError
        from memories.logging import logger

        try:
            result = await process_data(data)
        except DataSourceError as e:
            logger.error(f"Data source error: {e}")
            # Handle data source error
            handled = "data source"
        except ProcessingError as e:
            logger.error(f"Processing error: {e}")
            # Handle processing error
            handled = "processing"
        # --- end of the example ---
        else:
            handled = f"no error: {result}"
        return handled

    with caplog.at_level(logging.ERROR, logger="memories"):
        assert asyncio.run(example()) == "processing"
    message = caplog.records[-1].getMessage()
    assert message.startswith("Processing error: spectral_indices 2023-03|33TVM has no variable 'ndvii'; it holds [")
    assert "'ndvi'" in message


def test_concurrency_and_caching_examples(configured: Any, address: str, tmp_path: Any) -> None:
    from memories.applications import RealEstateAgent
    from memories.memory.view import MemoryView

    agent = RealEstateAgent()
    p = agent.locate(address)
    location1 = (p.lat, p.lon)
    location2 = (p.lat + 0.005, p.lon - 0.005)  # about 550 m north-west, still on the tile
    fetched: list[Any] = []

    async def fetch_imagery(location: tuple[float, float], time_range: tuple[str, str] = ("2023-01", "2023-08")) -> Any:
        """The NDVI of the memory's months at a location, as a (time,) DataArray."""

        def read() -> xr.DataArray:
            from pyproj import Transformer

            view = MemoryView()
            x, y = Transformer.from_crs(4326, configured.grid.epsg, always_xy=True).transform(location[1], location[0])
            months = [m for m in configured.months if time_range[0] <= m <= time_range[1]]
            values = [
                float(view.raster("spectral_indices", configured.tile, m)["ndvi"].sel(x=x, y=y, method="nearest"))
                for m in months
            ]
            return xr.DataArray(values, dims="time", coords={"time": months}, name="ndvi")

        fetched.append(location)
        return await asyncio.to_thread(read)

    async def concurrency() -> list[Any]:
        # --- the seed's example ---
        from memories.concurrency import TaskManager

        # Create a task manager
        task_manager = TaskManager(max_concurrent=5)

        # Add tasks to the manager
        task_manager.add_task(fetch_imagery(location1))
        task_manager.add_task(fetch_imagery(location2))

        # Wait for all tasks to complete
        results = await task_manager.gather()
        # --- end of the example ---
        return results

    results = asyncio.run(concurrency())
    assert [r.sizes["time"] for r in results] == [8, 8] and not results[0].equals(results[1])
    ds = MemoryView().raster("spectral_indices", configured.tile, "2023-03")
    nearest = ds["ndvi"].sel(x=p.x, y=p.y, method="nearest")
    assert results[0].sel(time="2023-03").item() == pytest.approx(float(nearest))

    async def caching(location: tuple[float, float], time_range: tuple[str, str]) -> Any:
        # --- the seed's example ---
        from memories.cache import Cache

        # Create a cache
        cache = Cache(name="imagery_cache", max_size_gb=2)

        # Try to get data from cache
        key = f"imagery_{location}_{time_range}"
        imagery = cache.get(key)

        if imagery is None:
            # Data not in cache, fetch it
            imagery = await fetch_imagery(location, time_range)
            # Store in cache for future use
            cache.set(key, imagery, ttl_days=30)
        # --- end of the example ---
        return imagery

    update_config("storage.root", (tmp_path / "store").as_uri())  # the cache folder under a fresh root
    try:
        fetched.clear()
        first = asyncio.run(caching(location1, ("2023-02", "2023-05")))
        second = asyncio.run(caching(location1, ("2023-02", "2023-05")))
    finally:
        update_config("storage.root", configured.root.uri)
    assert fetched == [location1]  # the second call came from the cache
    assert isinstance(second, xr.DataArray) and second.identical(first)
    assert list(second["time"].values) == ["2023-02", "2023-03", "2023-04", "2023-05"]
    assert (tmp_path / "store" / "cache" / "imagery_cache").is_dir()


def test_server_deployment_example(configured: Any) -> None:
    from memories.errors import ConfigError

    token = os.environ.get("MEMORIES_API_TOKEN")
    # --- the seed's example (on 127.0.0.1 and two workers: a test machine has two cores) ---
    from memories.server import MemoriesServer

    # Create and start the server
    server = MemoriesServer(host="127.0.0.1", port=0, workers=2, max_memory_gb=16)

    server.start()
    # --- end of the example ---
    try:
        pids = set()
        for _ in range(300):
            pids.add(httpx.get(f"{server.url}/health", timeout=10).json()["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2 and os.getpid() not in pids
        tiles = httpx.get(f"{server.url}/v1/tiles", timeout=30)
        assert tiles.status_code == 200 and configured.tile in tiles.text  # the configured memory is served
    finally:
        server.stop()
    if not token:  # the seed's host="0.0.0.0" serves every interface, which needs a token
        with pytest.raises(ConfigError, match="without a token"):
            MemoriesServer(host="0.0.0.0", port=8000, workers=4, max_memory_gb=16)
