"""Memories for the query-server tests, and servers started on 127.0.0.1.

``served_memory``: a small memory built here in a second, over real data: the
buildings and roads of the real OpenStreetMap extract of central Helsinki in the
spatial memory; events whose members the relationship memory's own code computes
from those buildings; catalog records written twice (a re-materialization); an
``environmental`` report written twice as versions, with a real PNG figure.

``app_memory``: the lead's memory of a small sample world (real composites,
indices, GIS layers, census, historical map), for analyses run on demand: the
session fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

import secrets
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
HELSINKI = DATA / "osm" / "Helsinki.osm.pbf"
TILE = "35VLG"  # the MGRS tile of central Helsinki
HELSINKI_GRID = (TILE, 32635, 385000.0, 6673500.0, 200, 220)  # 2 x 2.2 km at 10 m over the extract, EPSG:32635
MONTHS = ["2023-05", "2023-06", "2023-07"]
REPORT_MONTH = "2023-06"
TOKEN = secrets.token_hex(16)
FLOOD_END = datetime(2023, 7, 23, tzinfo=UTC)
EVENTS = [  # kind, month, start, end, centre (x, y in EPSG:32635), radius (m): disjoint footprints over the extract
    ("clear_cut", "2023-04", datetime(2023, 4, 8, tzinfo=UTC), None, (385635.0, 6671794.0), 100.0),
    ("new_district", "2023-05", datetime(2023, 5, 14, tzinfo=UTC), None, (386220.0, 6672779.0), 120.0),
    (
        "flood",
        "2023-07",
        datetime(2023, 7, 2, tzinfo=UTC),
        datetime(2023, 7, 23, tzinfo=UTC),
        (385926.0, 6672231.0),
        150.0,
    ),
]


@dataclass
class ServedMemory:
    """What ``served_memory`` built, with the instants between its writes."""

    root: Any
    catalog: Any
    memory: Any
    spatial: Any
    relationship: Any
    grid: Any
    layers: dict[str, Any]
    reports: list[Any] = field(default_factory=list)
    between: datetime | None = None
    """An instant after the first writes and before the re-materialization."""
    tile: str = TILE
    months: list[str] = field(default_factory=lambda: list(MONTHS))
    report_month: str = REPORT_MONTH
    token: str = TOKEN


def _helsinki_layers(grid: Any) -> dict[str, Any]:
    """Buildings and roads of the real Helsinki extract in the tile CRS, with an integer ``osm_id``."""
    from memories.earth.osm import read_osm_layer

    if not HELSINKI.exists():
        pytest.fail(f"real data missing at {HELSINKI}; see ../shared/data/README.md")
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GDAL's notes on unclosed OSM rings
        for layer in ("buildings", "roads"):
            frame, _ = read_osm_layer(str(HELSINKI), layer)
            ids = frame["osm_id"].astype("float64")
            if "osm_way_id" in frame.columns:
                ids = ids.fillna(frame["osm_way_id"].astype("float64"))
            frame = frame.assign(osm_id=ids.astype("int64"))[["osm_id", "name", "geometry"]]
            out[layer] = frame.to_crs(grid.crs).reset_index(drop=True)
    return out


def build_served_memory(folder: Path) -> ServedMemory:
    """Catalog, spatial and relationship memory, and versioned reports under ``folder``."""
    from shapely.geometry import Point

    from memories.applications.report import Report, png, pyplot, quantity
    from memories.grid import TileGrid
    from memories.memory.catalog import MemoryCatalog
    from memories.memory.relationship import DetectedEvent, RelationshipMemory, event_hyperedge
    from memories.memory.spatial import SpatialMemory
    from memories.memory.temporal import TemporalMemory
    from memories.months import month_range
    from memories.store.paths import StorageRoot

    root = StorageRoot((folder / "store").as_uri())
    catalog = MemoryCatalog.open(folder / "catalog.sqlite")
    grid = TileGrid(*HELSINKI_GRID)
    layers = _helsinki_layers(grid)

    spatial = SpatialMemory()
    for name, frame in layers.items():
        spatial.add(frame, layer=name, tile=TILE)
    spatial.save(root)

    relationship = RelationshipMemory()
    for kind, month, start, end, (x, y), radius in EVENTS:
        event = DetectedEvent(kind, TILE, month, Point(x, y).buffer(radius), start, end, "reported")
        relationship.add(event_hyperedge(event, layers, grid))
    relationship.save(root)

    def record(asset: str, month: str, uri: str, stats: dict[str, Any], version_id: str | None) -> None:
        first, last = month_range(month)
        catalog.record(
            asset=asset,
            uri=uri,
            tile=TILE,
            partition=month,
            valid_from=first,
            valid_to=last,
            crs=grid.crs,
            bbox_wgs84=grid.bbox_wgs84,
            stats=stats,
            version_id=version_id,
        )

    def report(ndvi: float) -> Report:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
        ax.plot([1, 2, 3], [0.5, ndvi, 0.6])
        summary = {
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "as_of": None,
            "crs": grid.crs,
            "sections": [
                {
                    "title": "Vegetation",
                    "text": "Mean NDVI of the tile.",
                    "quantities": {"mean NDVI": quantity(ndvi, "1", period=REPORT_MONTH, uncertainty=0.02)},
                    "figures": ["ndvi"],
                }
            ],
            # The last month had no clear pixel: NaN in the stored JSON, null in the server's answer.
            "figure_data": {"ndvi": {"x": [1, 2, 3, 4], "y": [0.5, ndvi, 0.6, float("nan")]}},
            "sources": {},
            "ndvi_mean": ndvi,
        }
        return Report("environmental", TILE, REPORT_MONTH, "Environment", summary, {"ndvi": png(fig)}, {"ndvi": "NDVI"})

    store_uri = root.raster_uri("spectral_indices", TILE)
    for month in MONTHS:
        record("spectral_indices", month, store_uri, {"ndvi_mean": 0.5}, f"snapshot-{month}-1")
    first = report(0.61)
    first.write(root)
    record("environmental_report", REPORT_MONTH, first.files["report.html"], {"ndvi_mean": 0.61}, first.version)
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    # A re-materialization of one month: a new snapshot and a new report version.
    record("spectral_indices", REPORT_MONTH, store_uri, {"ndvi_mean": 0.42}, f"snapshot-{REPORT_MONTH}-2")
    second = report(0.42)
    second.write(root)
    record("environmental_report", REPORT_MONTH, second.files["report.html"], {"ndvi_mean": 0.42}, second.version)
    return ServedMemory(
        root, catalog, TemporalMemory(catalog, root), spatial, relationship, grid, layers, [first, second], between
    )


@pytest.fixture(scope="package")
def served_memory() -> ServedMemory:
    """The small served memory (see the module docstring)."""
    return build_served_memory(Path(tempfile.mkdtemp(prefix="served-memory-")))


@pytest.fixture(scope="package")
def server(served_memory: ServedMemory) -> Iterator[Any]:
    """A MemoriesServer over ``served_memory`` on a free port of 127.0.0.1, token ``TOKEN``."""
    from memories.server import MemoriesServer

    with MemoriesServer(served_memory.memory, token=TOKEN, port=0) as s:
        yield s


@pytest.fixture(scope="package")
def client(server: Any) -> Iterator[Any]:
    """An httpx client of ``server`` sending the right bearer token."""
    import httpx

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as c:
        yield c


# ``app_memory`` (the applications' memory, for analyses on demand) is the session fixture of tests/conftest.py.
