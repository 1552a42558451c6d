"""The seed's memory example, as written but for place and dates, on the sample world.

``TemporalMemoryManager()`` and ``SpatialMemoryManager()`` take no arguments: they
open the configured catalog and storage root, which each test points at a fresh
folder. Imagery is the sample world's clear-sky reflectance of tile 33TVM as
``(band, y, x)`` DataArrays with Sentinel-2 band names; buildings are the tile's
buildings with seeded types and heights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from pyproj import CRS, Transformer

from memories.config import reset_config, update_config
from memories.errors import ConfigError, StorageError
from memories.memory import SpatialMemoryManager, TemporalMemoryManager, interval_index, spatial_items
from memories.sample.landscape import build_landscape
from memories.sample.scenes import clear_sky
from memories.sample.spec import SampleWorldSpec

SPEC = SampleWorldSpec(seed=42, n_tiles=2, start_month="2023-05", n_months=4, size_px=128)
TILE = "33TVM"
S2_BANDS = {"B2": "blue", "B3": "green", "B4": "red", "B8": "nir"}


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[Path]:
    """The configured catalog and storage root, in a fresh folder for this test."""
    update_config("storage.root", (tmp_path / "store").as_uri())
    update_config("storage.catalog_path", str(tmp_path / "catalog.sqlite"))
    try:
        yield tmp_path
    finally:
        reset_config()


def sample_imagery(n: int) -> list[xr.DataArray]:
    """``n`` images of tile 33TVM 30 days apart from 15 May 2023, bands B2, B3, B4, B8, with attrs."""
    landscape = build_landscape(SPEC, TILE)
    grid = SPEC.tile(TILE)
    out = []
    for i in range(n):
        when = datetime(2023, 5, 15, tzinfo=UTC) + timedelta(days=30 * i)
        x = np.stack([clear_sky(landscape, when, common) for common in S2_BANDS.values()]).astype(np.float32)
        da = xr.DataArray(
            x,
            dims=("band", "y", "x"),
            coords={"band": list(S2_BANDS), "y": grid.y, "x": grid.x},
            name="reflectance",
            attrs={"cloud_cover": float(3 * i), "bands": list(S2_BANDS)},
        )
        out.append(da)
    return out


def sample_buildings() -> list[pd.Series]:
    """The tile's buildings (EPSG:4326) with seeded ``type``, ``height`` (m) and ``year_built``."""
    landscape = build_landscape(SPEC, TILE)
    geoms = [b["geometry"] for b in landscape.features["buildings"]]
    rng = np.random.default_rng(5)
    gdf = gpd.GeoDataFrame(
        {
            "type": rng.choice(["building", "garage"], len(geoms), p=[0.8, 0.2]),
            "height": rng.uniform(3.0, 120.0, len(geoms)).round(1),
            "year_built": rng.integers(1950, 2023, len(geoms)),
        },
        geometry=geoms,
        crs=SPEC.tile(TILE).crs,
    ).to_crs("EPSG:4326")
    return [row for _, row in gdf.iterrows()]


def test_the_seeds_memory_example_runs_and_returns_what_was_stored(configured: Path) -> None:
    imagery = sample_imagery(5)
    buildings = sample_buildings()
    centre = shapely.MultiPoint([b.geometry.centroid for b in buildings]).centroid
    here = (centre.y, centre.x)

    # --- the seed's example (dates and place moved onto the sample world) ---
    temporal_memory = TemporalMemoryManager()
    spatial_memory = SpatialMemoryManager()

    for i, image in enumerate(imagery):
        acquisition_date = datetime(2023, 5, 15) + timedelta(days=30 * i)
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
        time_range=(datetime(2023, 6, 1), datetime(2023, 9, 1)),
        as_of=datetime.now(UTC),  # the seed's 2023-01-01 precedes this test's writes
    )

    nearby_features = spatial_memory.query(
        location=here,
        radius_km=2,
        filter=lambda x: x.metadata["type"] == "building" and x.metadata["height"] > 50,
    )
    # --- end of the example ---

    # Images 0-3 (15 May .. 12 Sep) overlap June-August; image 4 starts on 12 September.
    assert len(historical_states) == 4
    for i, rec in enumerate(historical_states):
        start = datetime(2023, 5, 15, tzinfo=UTC) + timedelta(days=30 * i)
        assert rec.valid_time == (start, start + timedelta(days=30))
        assert rec.transaction_time[1] is None
        assert rec.metadata == {"source": "sentinel-2", "cloud_cover": 3.0 * i, "bands": ["B2", "B3", "B4", "B8"]}
        xr.testing.assert_equal(rec.data.load(), imagery[i])
        assert rec.data.name == "reflectance" and rec.data.attrs["cloud_cover"] == 3.0 * i

    assert nearby_features, "the radius holds tall buildings"
    got = sorted(round(x.data["height"], 1) for x in nearby_features)
    assert got == sorted(_brute_force_tall_buildings(buildings, here, 2.0))
    assert all(isinstance(x.data, pd.Series) and x.geometry.equals(x.data["geometry"]) for x in nearby_features)
    dist = [x.distance_km for x in nearby_features]
    assert dist == sorted(dist) and max(dist) <= 2.0

    # Both persist: a new manager on the configured memory finds everything again.
    again = TemporalMemoryManager().query(time_range=(datetime(2023, 6, 1), datetime(2023, 9, 1)))
    assert [r.id for r in again] == [r.id for r in historical_states]
    reopened = SpatialMemoryManager()
    assert len(reopened) == len(buildings)
    assert {x.id for x in reopened.query(location=here, radius_km=2, filter=lambda x: x.metadata["height"] > 50)} >= {
        x.id for x in nearby_features
    }


def _brute_force_tall_buildings(buildings: list[pd.Series], here: tuple[float, float], km: float) -> list[float]:
    """Heights of the tall 'building's within ``km``: distance in a local AEQD projection, every building checked."""
    aeqd = CRS.from_proj4(f"+proj=aeqd +lat_0={here[0]} +lon_0={here[1]} +ellps=WGS84 +units=m")
    to_local = Transformer.from_crs("EPSG:4326", aeqd, always_xy=True)
    out = []
    for b in buildings:
        local = shapely.ops.transform(to_local.transform, b.geometry)
        if local.distance(shapely.Point(0, 0)) <= km * 1000 and b.type == "building" and b.height > 50:
            out.append(round(float(b.height), 1))
    return out


def test_update_closes_the_old_version_and_as_of_before_it_returns_the_old_data(configured: Path) -> None:
    memory = TemporalMemoryManager()
    old, new = np.arange(12.0).reshape(3, 4), -np.arange(12.0).reshape(3, 4)
    first = memory.store(data=old, valid_time=(datetime(2023, 7, 1), datetime(2023, 7, 31)), metadata={"v": 1})
    between = datetime.now(UTC)
    second = memory.update(first, data=new)

    before = memory.query(time_point=datetime(2023, 7, 10), as_of=between)
    assert [r.id for r in before] == [first]
    assert np.array_equal(before[0].data, old)
    now = memory.query(time_point=datetime(2023, 7, 10))
    assert [r.id for r in now] == [second]
    assert np.array_equal(now[0].data, new) and now[0].metadata == {"v": 1}
    assert now[0].previous_version == first and now[0].version == 2
    closed = memory.catalog.get(first)
    assert closed.transaction_to == now[0].transaction_from
    # A record serializes as its catalog row (the query server's JSON), without the memory it reads from.
    assert dataclasses.asdict(now[0]) == dataclasses.asdict(memory.catalog.get(second))

    # Metadata only: the stored data version is kept, not copied.
    third = memory.update(second, metadata={"v": 3}, valid_time=(datetime(2023, 7, 1), datetime(2023, 8, 31)))
    rec = memory.query(time_point=datetime(2023, 8, 20))[0]
    assert rec.id == third and rec.metadata == {"v": 3} and rec.version_id == now[0].version_id
    assert np.array_equal(rec.data, new)
    assert memory.query(time_point=datetime(2023, 8, 20), as_of=between) == []

    with pytest.raises(StorageError, match=f"record {third}: update that one"):
        memory.update(first, metadata={"v": 9})


def test_every_kind_of_data_comes_back_as_stored(configured: Path) -> None:
    memory = TemporalMemoryManager()
    when = (datetime(2023, 5, 1), datetime(2023, 5, 31))
    frame = pd.DataFrame({"ndvi": [0.1, 0.5], "name": ["a", "b"]})
    gdf = gpd.GeoDataFrame({"n": [1, 2]}, geometry=[shapely.Point(14.5, 46.0), shapely.Point(14.6, 46.1)], crs=4326)
    ds = xr.Dataset({"ndvi": (("y", "x"), np.full((2, 3), 0.25, np.float32))}, attrs={"units": "1"})
    mapping = {"events": ["flood"], "area_ha": 19.6, "when": "2023-08-01"}
    ints = np.arange(6, dtype=np.uint16).reshape(2, 3)
    ids = [memory.store(data=d, valid_time=when) for d in (frame, gdf, ds, mapping, ints)]
    by_id = {r.id: r.data for r in memory.query(time_point=datetime(2023, 5, 10))}
    pd.testing.assert_frame_equal(by_id[ids[0]], frame)
    assert by_id[ids[1]].equals(gdf) and by_id[ids[1]].crs.to_epsg() == 4326
    xr.testing.assert_identical(by_id[ids[2]].load(), ds)
    assert by_id[ids[3]] == mapping
    assert by_id[ids[4]].dtype == np.uint16 and np.array_equal(by_id[ids[4]], ints)


def test_bad_input_is_refused_with_what_to_do(configured: Path) -> None:
    memory = TemporalMemoryManager()
    when = (datetime(2023, 5, 1), datetime(2023, 5, 31))
    with pytest.raises(ConfigError, match="cannot be stored.*numpy array"):
        memory.store(data=object(), valid_time=when)
    with pytest.raises(ConfigError, match="metadata\\['cc'\\] is nan"):
        memory.store(data={"a": 1}, valid_time=when, metadata={"cc": float("nan")})
    with pytest.raises(ConfigError, match="ends before it starts"):
        memory.store(data={"a": 1}, valid_time=(datetime(2023, 6, 1), datetime(2023, 5, 1)))
    rec = memory.catalog.record(asset="surface_reflectance", uri="file:///x.zarr", tile=TILE, partition="2023-05")
    with pytest.raises(ConfigError, match="re-materialize that partition"):
        memory.update(rec.id, metadata={})


def test_interval_index_answers_as_a_scan_of_every_record(configured: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mixed lengths (instants to years, open ends), added in batches across tail merges: index == brute force."""
    monkeypatch.setattr(interval_index, "TAIL_LIMIT", 16)
    memory = TemporalMemoryManager()
    rng = np.random.default_rng(3)
    origin = datetime(2020, 1, 1, tzinfo=UTC)
    for batch in range(2):
        for _ in range(40):
            start = origin + timedelta(hours=float(rng.uniform(0, 4 * 8760)))
            length = timedelta(hours=float(rng.choice([0, 1, 24 * 30, 24 * 365, 24 * 2000])))
            end = None if rng.random() < 0.05 else start + length
            memory.catalog.record(
                asset="bench", uri="file:///x", partition=f"p{rng.integers(1e9)}", valid_from=start, valid_to=end
            )
        rows = memory.catalog.query("bench")
        for _ in range(30):
            a = origin + timedelta(hours=float(rng.uniform(-2000, 4 * 8760)))
            b = a + timedelta(hours=float(rng.choice([0, 5, 24 * 40])))
            want = sorted(
                r.id
                for r in rows
                if datetime.fromisoformat(r.valid_from) <= b
                and (r.valid_to is None or datetime.fromisoformat(r.valid_to) >= a)
            )
            got = (
                memory.query(asset="bench", time_range=(a, b)) if a != b else memory.query(asset="bench", time_point=a)
            )
            assert sorted(r.id for r in got) == want, (batch, a, b)


def test_spatial_parts_are_merged_and_reopening_finds_every_item(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spatial_items, "COMPACT_PARTS", 3)
    mem = SpatialMemoryManager()
    ids = [
        mem.store(data={"k": k}, geometry=shapely.Point(14.5 + k * 1e-3, 46.05), metadata={"k": k}) for k in range(7)
    ]
    folder = Path(mem.root.path(mem._folder()))
    assert len(list(folder.glob("part-*.parquet"))) <= 4
    reopened = SpatialMemoryManager()
    found = reopened.query(location=(46.05, 14.5), radius_km=1)
    assert sorted(x.id for x in found) == sorted(ids)
    assert [x.data["k"] for x in found] == list(range(7))  # sorted by distance
    assert [x.metadata["k"] for x in reopened.query(bbox=(14.5015, 46.0, 14.6, 46.1), filter={"k": [2, 3, 9]})] == [
        2,
        3,
    ]


def test_spatial_memory_manager_still_opens_the_pipelines_spatial_index(configured: Path) -> None:
    from memories.memory.spatial import SpatialMemory

    mem = SpatialMemory()
    frame = gpd.GeoDataFrame({"osm_id": [1, 2]}, geometry=[shapely.Point(14.50, 46.04), shapely.Point(15.5, 46.5)])
    mem.add(frame.set_crs(4326), layer="buildings", tile=TILE)
    root = SpatialMemoryManager().root
    mem.save(root)
    near = SpatialMemoryManager.load(root).query(location=(46.04, 14.50), radius_km=2, filter={"layer": "buildings"})
    assert list(near["feature_id"]) == ["buildings:1"]
