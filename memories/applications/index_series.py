"""A tile's monthly index series, kept per month with the month's records instead of re-read from every raster.

The environmental analysis of month N plots and fits, for every month up to N, the tile mean of
each index, the NDVI quartiles and the median NDVI per land-cover class. Read from the rasters,
month N costs N raster reads (+28 % per tile-month after 24 months, issue 13 item 4). Instead
each month's summary is computed once, when that month's product is written, and kept in its
catalog record's ``stats``, so it is bi-temporal like the record itself (a view ``as_of`` a past
time reads the summary of the version in force then; a re-materialized month brings its own):

- ``spectral_indices``: ``stats[INDEX_SUMMARY]`` = :func:`index_summary` of the written month
  (``tile_mean``: index -> :func:`~memories.applications.trends.tile_mean`; ``ndvi_p25`` /
  ``ndvi_p75``: NDVI quartiles of the clear pixels);
- ``land_cover``: ``stats[CLASS_SUMMARY]`` = :func:`class_ndvi_summary`: class name -> median NDVI
  over the pixels of that class **in that month's own land cover** (classes with at least
  :data:`MIN_CLASS_PX` pixels that month; the others None).

:func:`read_series` builds the series from those small rows: one catalog query per product,
no raster read. A record written before the summaries were kept (an old store) still works: its
month's summary is computed from its rasters, and :attr:`IndexSeriesRead.computed` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from memories.applications.environmental_analysis import IndexSeries
from memories.applications.trends import tile_mean
from memories.classes import LAND_COVER_CLASSES
from memories.products import LAND_COVER, SPECTRAL_INDICES

__all__ = [
    "CLASS_SUMMARY",
    "INDEX_SUMMARY",
    "MIN_CLASS_PX",
    "IndexSeriesRead",
    "class_ndvi_summary",
    "index_summary",
    "read_series",
]

INDEX_SUMMARY = "tile_summary"
"""Key of a ``spectral_indices`` record's stats holding :func:`index_summary` of its month."""
CLASS_SUMMARY = "ndvi_median_by_class"
"""Key of a ``land_cover`` record's stats holding :func:`class_ndvi_summary` of its month."""
MIN_CLASS_PX = 20
"""A class with fewer pixels in a month gets no median NDVI that month (None)."""


def index_summary(indices: Any) -> dict[str, Any]:
    """The month's summary of a ``spectral_indices`` Dataset (JSON values, kept in the record's stats).

    Returns:
        ``tile_mean``: variable -> tile mean of its valid values (dimensionless; None: under
        :data:`~memories.applications.trends.MIN_VALID_FRACTION` clear pixels); ``ndvi_p25`` and
        ``ndvi_p75``: the 25th and 75th percentiles of the finite NDVI values (None when none is finite).
    """
    ndvi = np.asarray(indices["ndvi"].values, dtype=np.float64)
    finite = ndvi[np.isfinite(ndvi)]
    return {
        "tile_mean": {str(name): tile_mean(indices[name].values) for name in indices.data_vars},
        "ndvi_p25": float(np.percentile(finite, 25)) if finite.size else None,
        "ndvi_p75": float(np.percentile(finite, 75)) if finite.size else None,
    }


def class_ndvi_summary(ndvi: Any, land_cover: Any, *, strip_rows: int = 1024) -> dict[str, dict[str, float | None]]:
    """``{CLASS_SUMMARY: class name -> median NDVI}`` of one month over that month's own land cover.

    Read ``strip_rows`` rows at a time, so lazy inputs (as the stores give them) are never whole in
    memory: only the clear NDVI values of each class are kept, in their own dtype, and each median is
    exact (that of ``np.nanmedian`` in float64).

    Args:
        ndvi: (H, W) NDVI of the month (NaN: no clear observation), or a ``surface_reflectance``
            ``reflectance`` DataArray with a ``band`` dim, whose NDVI is computed as ``spectral_indices``
            computes it (:func:`memories.earth.indices.compute_indices`); numpy or lazy.
        land_cover: (H, W) class codes of the same month; numpy or lazy.
        strip_rows: rows read at a time.

    Returns:
        One entry to merge into the ``land_cover`` record's stats: a median (dimensionless) for every class
        with at least :data:`MIN_CLASS_PX` pixels, None for the others (or when none of its pixels is clear).
    """
    from_reflectance = hasattr(ndvi, "dims") and "band" in ndvi.dims
    rows = int(land_cover.shape[-2])
    counts = dict.fromkeys((c.code for c in LAND_COVER_CLASSES), 0)
    clear: dict[int, list[np.ndarray]] = {c.code: [] for c in LAND_COVER_CLASSES}
    for r0 in range(0, rows, strip_rows):
        part = ndvi[..., r0 : r0 + strip_rows, :]
        if from_reflectance:
            from memories.earth.indices import compute_indices

            part = compute_indices(part, ("ndvi",))["ndvi"]
        values = np.asarray(getattr(part, "values", part))
        classes = land_cover[..., r0 : r0 + strip_rows, :]
        classes = np.asarray(getattr(classes, "values", classes))
        for code in counts:
            mask = classes == code
            counts[code] += int(mask.sum())
            v = values[mask]
            clear[code].append(v[np.isfinite(v)])
    out: dict[str, float | None] = {}
    for c in LAND_COVER_CLASSES:
        out[c.name] = _median(np.concatenate(clear[c.code])) if counts[c.code] >= MIN_CLASS_PX else None
    return {CLASS_SUMMARY: out}


def _median(values: np.ndarray) -> float | None:
    """Median of finite ``values`` as ``np.median`` computes it in float64 (without a float64 copy); None if empty."""
    n = values.size
    if not n:
        return None
    k = n // 2
    part = np.partition(values, [k - 1, k] if n % 2 == 0 else [k])
    return float(part[k]) if n % 2 else (float(part[k - 1]) + float(part[k])) / 2


@dataclass(frozen=True, eq=False)
class IndexSeriesRead:
    """A series and how it was read.

    Attributes:
        series: the monthly series.
        computed: months whose summary the records lacked (written before summaries were kept), computed
            from their rasters.
        no_land_cover: months without a ``land_cover`` record (no class medians that month).
    """

    series: IndexSeries
    computed: list[str]
    no_land_cover: list[str]


def read_series(
    view: Any, tile: str, months: list[str], indices: tuple[str, ...], classes: np.ndarray
) -> IndexSeriesRead:
    """The series of ``indices`` over ``months`` from the month summaries of the records in force at the view's
    ``as_of``; the class medians of the classes with at least :data:`MIN_CLASS_PX` pixels in ``classes``
    (the analysed month's land cover), each month's over that month's own land cover.

    Reads one catalog query per product; a raster only for a month whose record holds no summary.
    """
    si = {r.partition: r for r in view.records(SPECTRAL_INDICES, tile)}
    lc = {r.partition: r for r in view.records(LAND_COVER, tile)}
    shown = [c.name for c in LAND_COVER_CLASSES if (classes == c.code).sum() >= MIN_CLASS_PX]
    means: dict[str, list[float | None]] = {name: [] for name in indices}
    medians: dict[str, list[float | None]] = {name: [] for name in shown}
    p25: list[float | None] = []
    p75: list[float | None] = []
    computed: list[str] = []
    no_lc: list[str] = []
    for m in months:
        summary = (si[m].stats or {}).get(INDEX_SUMMARY) if m in si else None
        by_class = (lc[m].stats or {}).get(CLASS_SUMMARY) if m in lc else None
        if summary is None or not set(indices) <= set(summary["tile_mean"]) or (m in lc and by_class is None):
            computed.append(m)
            summary, by_class = _from_rasters(view, tile, m, m in lc)
        if m not in lc:
            no_lc.append(m)
        for name in indices:
            means[name].append(summary["tile_mean"][name])
        for name in shown:
            medians[name].append(by_class.get(name) if by_class else None)
        p25.append(summary["ndvi_p25"])
        p75.append(summary["ndvi_p75"])
    return IndexSeriesRead(IndexSeries(list(months), means, medians, p25, p75), computed, no_lc)


def _from_rasters(view: Any, tile: str, month: str, with_land_cover: bool) -> tuple[dict[str, Any], Any]:
    """A month's summaries computed from its rasters (a record of an old store)."""
    ds = view.raster(SPECTRAL_INDICES, tile, month)
    by_class = None
    if with_land_cover:
        classes = np.asarray(view.raster(LAND_COVER, tile, month)["land_cover"].values)
        by_class = class_ndvi_summary(ds["ndvi"].values, classes)[CLASS_SUMMARY]
    return index_summary(ds), by_class
