"""A GeoParquet write killed with SIGKILL at each of its renames: hive readers count one version's rows, never two.

A child process writes version 2 of a table partition and kills itself (SIGKILL)
just before the k-th ``os.replace`` of the write, when that file's temporary is on
disk whole: the version file, the pointer, the plain ``part-0.parquet``. pyarrow's
hive dataset over the table must count version 1's rows, version 1 must stay
readable, and the next write must leave no temporary behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow.dataset as pads
import pytest
import shapely

from memories.earth.gis import read_geoparquet, write_geoparquet
from memories.store.paths import StorageRoot

REPO = Path(__file__).resolve().parents[3]
TILE, MONTH = "33TVM", "2023-06"

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import geopandas as gpd, shapely
    from memories.earth.gis import write_geoparquet
    from memories.store.paths import StorageRoot

    root_uri, kill_at, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    renames = [0]
    real_replace = os.replace

    def replace(src, dst):
        renames[0] += 1
        if renames[0] == kill_at:  # the temporary of this file is on disk, whole
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)

    os.replace = replace
    root = StorageRoot(root_uri)
    frame = gpd.GeoDataFrame(
        {"v": list(range(rows))}, geometry=[shapely.Point(i, i) for i in range(rows)], crs="EPSG:32633"
    )
    write_geoparquet(root, root.table_uri("stac_items", "33TVM", "2023-06"), frame)
    """
)


def _frame(rows: int) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"v": list(range(rows))}, geometry=[shapely.Point(i, i) for i in range(rows)], crs="EPSG:32633"
    )


def _hive_rows(root: StorageRoot) -> int:
    """Rows of the whole table as a hive-partitioned reader sees them (pyarrow's defaults)."""
    folder = root.local_path(root.uri) + "/tables/stac_items"
    return pads.dataset(folder, format="parquet", partitioning="hive").count_rows()


def _temporaries(root: StorageRoot) -> list[str]:
    folder = Path(root.local_path(root.uri)) / "tables"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp-" in p.name)


@pytest.mark.parametrize(("kill_at", "current"), [(1, 1), (2, 1), (3, 2)], ids=["version", "pointer", "plain"])
def test_killed_geoparquet_write_never_doubles_hive_rows_and_keeps_the_previous_version(tmp_path, kill_at, current):
    root = StorageRoot((tmp_path / "store").as_uri())
    uri = root.table_uri("stac_items", TILE, MONTH)
    write_geoparquet(root, uri, _frame(3))
    first = root.current_version(uri)

    child = subprocess.run(
        [sys.executable, "-c", CHILD, root.uri, str(kill_at), "5"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()

    assert _temporaries(root), "the kill left the temporary it was about to rename"
    assert _hive_rows(root) == 3  # version 1's rows, once: no temporary is read as data
    assert read_geoparquet(root, uri, version=first)["v"].tolist() == [0, 1, 2]
    assert len(read_geoparquet(root, uri)) == (3 if current == 1 else 5)  # the pointer is the commit point

    write_geoparquet(root, uri, _frame(7))
    assert _hive_rows(root) == 7
    assert _temporaries(root) == []  # the strays of the killed write are gone
    assert read_geoparquet(root, uri, version=first)["v"].tolist() == [0, 1, 2]


def test_a_stray_temporary_of_older_versions_is_removed_by_the_next_write(tmp_path):
    root = StorageRoot((tmp_path / "store").as_uri())
    uri = root.table_uri("climate_series", TILE, MONTH)
    root.write_bytes(uri, pd.DataFrame({"v": [0, 1, 2]}).to_parquet(index=False))
    plain = Path(root.local_path(uri))
    stray = plain.with_name(f"{plain.name}.tmp-{'a' * 32}")  # the name the code before this fix left in sight
    stray.write_bytes(plain.read_bytes())
    folder = root.local_path(root.uri) + "/tables/climate_series"
    assert pads.dataset(folder, format="parquet", partitioning="hive").count_rows() == 6  # read twice
    root.write_bytes(uri, plain.read_bytes())
    assert not stray.exists()
    assert pads.dataset(folder, format="parquet", partitioning="hive").count_rows() == 3
