"""Spatial memory query latency on 1 million features: ours vs a brute-force scan vs GeoPackage's R-tree.

Features are random (seeded) in a 2° x 2° box around 46° N 14° E: 80 % points,
20 % small squares (~30 m). Each engine answers the same point-radius (2 km,
geodesic) and bbox (~3 km) queries; results are checked equal.

- ours: ``SpatialMemory.query`` (H3 partitions + STRtrees, AEQD refinement), returning a
  GeoDataFrame with every attribute (and ``distance_km``, sorted); ``oursids``: the same
  index and refinement returning matching row ids only, like the two engines below;
- brute force: numpy comparison of all feature bounds with the query box, then the
  same exact refinement on the hits;
- GeoPackage R-tree: the same data written with pyogrio, candidate ids from the
  ``rtree_<table>_geom`` virtual table in SQLite, then the same refinement; and
  ``pyogrio.read_dataframe(bbox=...)`` (R-tree plus reading the features: compare with ``ours``).

Run: ``.venv/bin/python bench/spatial_bench.py [--n 1000000] [--queries 100]``
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._sizes import add_size_flags, apply_size_flags

QUICK = {"n": 100_000, "queries": 50}
FULL = {"n": 1_000_000, "queries": 100}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--radius-km", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    add_size_flags(ap)
    args = apply_size_flags(ap.parse_args(), QUICK, FULL)

    import geopandas as gpd
    import pyogrio
    import shapely

    from memories.memory.spatial import SpatialMemory, aeqd

    rng = np.random.default_rng(args.seed)
    n_poly = args.n // 5
    lon = 13.0 + 2.0 * rng.random(args.n)
    lat = 45.0 + 2.0 * rng.random(args.n)
    geoms = shapely.points(lon, lat)
    half = 0.0002
    geoms[:n_poly] = shapely.box(
        lon[:n_poly] - half, lat[:n_poly] - half * 0.7, lon[:n_poly] + half, lat[:n_poly] + half * 0.7
    )
    gdf = gpd.GeoDataFrame(
        {"fid_": np.arange(args.n), "kind": rng.choice(["a", "b", "c"], args.n)}, geometry=geoms, crs="EPSG:4326"
    )
    t = time.perf_counter()
    mem = SpatialMemory()
    mem.add(gdf, layer="bench", tile="bench")
    mem.index()
    build_s = time.perf_counter() - t
    print(f"{args.n} features ({n_poly} polygons): ours built in {build_s:.1f} s, {mem.partitions} H3 partitions")

    tmp = Path(tempfile.mkdtemp(prefix="spatial-bench-"))
    gpkg = tmp / "bench.gpkg"
    t = time.perf_counter()
    pyogrio.write_dataframe(gdf, gpkg, layer="bench", driver="GPKG")
    print(f"GeoPackage written with its R-tree in {time.perf_counter() - t:.1f} s")
    con = sqlite3.connect(gpkg)
    all_geoms = mem.frame.geometry.values
    fids = mem.frame["fid_"].to_numpy()
    bounds = shapely.bounds(np.asarray(all_geoms))
    row_of_fid = np.empty(args.n, dtype=np.int64)
    row_of_fid[fids] = np.arange(args.n)

    qlat = 45.2 + 1.6 * rng.random(args.queries)
    qlon = 13.2 + 1.6 * rng.random(args.queries)

    def refine(rows, la, lo, r_km):
        local = shapely.transform(np.asarray(all_geoms)[rows], lambda xy: aeqd(lo, la, xy))
        return rows[shapely.distance(shapely.Point(0, 0), local) / 1000 <= r_km]

    def window(la, lo, r_km):
        dlat = r_km / 110.5
        dlon = dlat / np.cos(np.radians(abs(la) + dlat))
        return lo - dlon, la - dlat, lo + dlon, la + dlat

    def scan(w):
        return np.flatnonzero(
            (bounds[:, 2] >= w[0]) & (bounds[:, 0] <= w[2]) & (bounds[:, 3] >= w[1]) & (bounds[:, 1] <= w[3])
        )

    def rtree(w):
        ids = con.execute(
            "SELECT id FROM rtree_bench_geom WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?",
            (w[0], w[2], w[1], w[3]),
        ).fetchall()
        return row_of_fid[np.array([i for (i,) in ids], dtype=np.int64) - 1]

    lat_ms: dict[str, list[float]] = {
        k: []
        for k in (
            "ours_radius",
            "oursids_radius",
            "scan_radius",
            "rtree_radius",
            "ours_bbox",
            "oursids_bbox",
            "scan_bbox",
            "rtree_bbox",
            "pyogrio_bbox",
        )
    }
    hits = []
    for la, lo in zip(qlat, qlon):
        t = time.perf_counter()
        ours = mem.query(location=(la, lo), radius_km=args.radius_km)
        lat_ms["ours_radius"].append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        ours_ids, _ = mem.radius_rows((la, lo), args.radius_km)
        lat_ms["oursids_radius"].append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        brute = refine(scan(window(la, lo, args.radius_km)), la, lo, args.radius_km)
        lat_ms["scan_radius"].append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        viagp = refine(rtree(window(la, lo, args.radius_km)), la, lo, args.radius_km)
        lat_ms["rtree_radius"].append(1000 * (time.perf_counter() - t))
        want = set(fids[brute].tolist())
        assert set(ours["fid_"]) == want == set(fids[viagp].tolist()) == set(fids[ours_ids].tolist()), "disagree"
        hits.append(len(want))

        box = (lo - 0.02, la - 0.0135, lo + 0.02, la + 0.0135)
        t = time.perf_counter()
        ours_b = mem.query(bbox=box)
        lat_ms["ours_bbox"].append(1000 * (time.perf_counter() - t))
        qbox = shapely.box(*box)
        t = time.perf_counter()
        ours_ids_b = mem.index().query(qbox, "intersects")
        lat_ms["oursids_bbox"].append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        c = scan(box)
        scan_b = c[shapely.intersects(np.asarray(all_geoms)[c], qbox)]
        lat_ms["scan_bbox"].append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        c = rtree(box)
        rtree_b = c[shapely.intersects(np.asarray(all_geoms)[c], qbox)]
        lat_ms["rtree_bbox"].append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        pyogrio.read_dataframe(gpkg, layer="bench", bbox=box)
        lat_ms["pyogrio_bbox"].append(1000 * (time.perf_counter() - t))
        assert set(ours_b["fid_"]) == set(fids[scan_b].tolist()) == set(fids[rtree_b].tolist())
        assert set(fids[ours_ids_b].tolist()) == set(fids[scan_b].tolist())

    p50 = {k: round(float(np.percentile(v, 50)), 3) for k, v in lat_ms.items()}
    summary = {
        "n": args.n,
        "queries": args.queries,
        "build_s": round(build_s, 2),
        "p50_ms": p50,
        "ratio_rtree_vs_ours_radius": round(p50["rtree_radius"] / p50["ours_radius"], 2),
        "ratio_rtree_vs_ours_bbox": round(p50["rtree_bbox"] / p50["ours_bbox"], 2),
    }
    print(f"{args.queries} queries; radius {args.radius_km} km -> {np.mean(hits):.0f} features on average")
    print(f"{'engine / query':<18}{'p50 ms':>10}{'p95 ms':>10}{'p50 vs ours':>14}")
    for q in ("radius", "bbox"):
        base = np.percentile(lat_ms[f"ours_{q}"], 50)
        for eng in ("ours", "oursids", "scan", "rtree", "pyogrio"):
            k = f"{eng}_{q}"
            if k not in lat_ms:
                continue
            p50, p95 = np.percentile(lat_ms[k], [50, 95])
            print(f"{k:<18}{p50:>10.2f}{p95:>10.2f}{p50 / base:>13.1f}x")
    con.close()
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
