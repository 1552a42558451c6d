"""Data quality gates: great-expectations 1.x suites for scene tables, composites and vector layers.

Each ``validate_*`` function builds a pandas frame from its input, runs one
expectation suite on it in an ephemeral great-expectations context (nothing is
written to disk, no analytics are sent), and returns a ``SuiteResult``: overall
success plus one ``ExpectationOutcome`` per expectation. The Dagster assets turn
these into blocking asset checks; a notebook can call them directly.

Suites:

- ``stac_items``: ids unique and non-null, ``datetime`` non-null, ``cloud_cover``
  within 0-100 %, ``tile`` an MGRS id (``33TVM``).
- ``composite``: the share of pixels with a clear median at least
  ``min_valid_fraction``; reflectance of every band within [-0.1, 1.6]; spread >= 0;
  ``clear_count`` and ``obs_count`` >= 0 with ``clear_count <= obs_count``. Pixels
  are sampled (seeded) into the frame, always together with each band's extreme
  pixels, so the range expectations see the true minimum and maximum.
- ``vector_layers``: CRS set (and equal to the tile's when given), geometries
  valid and not empty, geometry types those expected per layer, and at least
  ``min_features`` features (per layer, default 0) and one feature in all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from memories.earth.composite_summary import CompositeSummary, summarize_composite
from memories.errors import ProcessingError
from memories.products import STAC_ITEMS

MGRS_TILE_REGEX = r"^\d{1,2}[C-HJ-NP-X][A-HJ-NP-Z]{2}$"
"""An MGRS tile id: UTM zone, latitude band, 100 km square."""
REFLECTANCE_RANGE: tuple[float, float] = (-0.1, 1.6)
"""Plausible surface reflectance: the -0.1 offset floor up to bright snow and specular glint."""
MIN_VALID_FRACTION = 0.05
"""Default: a composite with fewer pixels seen clear than this is not usable downstream."""
COMPOSITE_SAMPLE_PX = 50_000
"""Pixels sampled from a composite into the validated frame (all of them when fewer)."""
LAYER_GEOMETRY_TYPES: Mapping[str, tuple[str, ...]] = {
    "buildings": ("Polygon", "MultiPolygon"),
    "landuse": ("Polygon", "MultiPolygon"),
    "water": ("Polygon", "MultiPolygon", "LineString", "MultiLineString"),
    "roads": ("LineString", "MultiLineString"),
}
"""Geometry types expected per GIS layer (after clipping to the tile)."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict.

    Attributes:
        expectation: the great-expectations type, e.g. ``expect_column_values_to_be_between``.
        column: the column it looked at (None for table-level expectations).
        success: whether it held.
        details: what it observed: unexpected count and a few unexpected values, or the observed value.
    """

    expectation: str
    column: str | None
    success: bool
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteResult:
    """The result of one expectation suite on one input.

    Attributes:
        suite: suite name (``stac_items``, ``composite``, ``vector_layers``).
        success: True when every expectation held.
        outcomes: one per expectation, in the suite's order.
        rows: rows of the validated frame.
    """

    suite: str
    success: bool
    outcomes: list[ExpectationOutcome]
    rows: int

    @property
    def failed(self) -> list[ExpectationOutcome]:
        """The expectations that did not hold."""
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable summary for asset-check metadata."""
        return {
            "suite": self.suite,
            "success": self.success,
            "rows": self.rows,
            "evaluated": len(self.outcomes),
            "failed": [{"expectation": o.expectation, "column": o.column, **_jsonable(o.details)} for o in self.failed],
        }


def validate_stac_items(table: Any) -> SuiteResult:
    """Validate a scene table (``memories.earth.stac.items_table``): unique ids, times, cloud cover, tile ids."""
    import great_expectations as gx

    cols = [c for c in ("id", "datetime", "cloud_cover", "tile") if c in table.columns]
    missing = {"id", "datetime", "cloud_cover"} - set(cols)
    if missing:
        raise ProcessingError(
            f"the scene table lacks columns {sorted(missing)}; build it with memories.earth.stac.items_table"
        )
    frame = pd.DataFrame({c: table[c].to_numpy() for c in cols})
    exp = gx.expectations
    suite = [
        exp.ExpectColumnValuesToNotBeNull(column="id"),
        exp.ExpectColumnValuesToBeUnique(column="id"),
        exp.ExpectColumnValuesToNotBeNull(column="datetime"),
        exp.ExpectColumnValuesToBeBetween(column="cloud_cover", min_value=0, max_value=100),
    ]
    if "tile" in cols:
        frame["tile"] = frame["tile"].astype("string")
        suite.append(exp.ExpectColumnValuesToMatchRegex(column="tile", regex=MGRS_TILE_REGEX))
    return _run(STAC_ITEMS, frame, suite)


def validate_composite(
    composite: Any,
    *,
    min_valid_fraction: float = MIN_VALID_FRACTION,
    reflectance_range: tuple[float, float] = REFLECTANCE_RANGE,
    sample_px: int = COMPOSITE_SAMPLE_PX,
    seed: int = 0,
    summary: CompositeSummary | None = None,
) -> SuiteResult:
    """Validate a monthly composite (``reflectance`` (band, y, x), counts (y, x), optional ``spread``).

    Args:
        composite: an xarray Dataset as ``memories.earth.imagery.monthly_composite`` returns (computed or lazy).
        min_valid_fraction: least share (0-1) of pixels with a finite reflectance in every band.
        reflectance_range: allowed reflectance, inclusive.
        sample_px: pixels sampled into the frame; each band's extreme pixels are always added.
        seed: seed of the pixel sample.
        summary: the composite's ``summarize_composite`` with this ``sample_px`` and ``seed``, when the
            caller has it (its sample is used: the composite is not read again).
    """
    import great_expectations as gx

    if not 0 <= min_valid_fraction <= 1:
        raise ProcessingError(f"min_valid_fraction must lie in 0..1, got {min_valid_fraction}")
    refl = composite["reflectance"]
    if refl.ndim != 3:
        raise ProcessingError(f"composite reflectance must have dims (band, y, x), got shape {refl.shape}")
    bands = [str(b) for b in composite["band"].values] if "band" in composite.coords else list(map(str, range(3)))
    if summary is None:
        summary = summarize_composite(composite, medians=False, spread_medians=False, sample_px=sample_px, seed=seed)
    if summary.sample is None or (summary.sample_px, summary.seed) != (sample_px, seed):
        raise ProcessingError(
            f"the summary's sample ({summary.sample_px} px, seed {summary.seed}) is not the suite's "
            f"({sample_px} px, seed {seed}); call summarize_composite(composite, sample_px={sample_px}, seed={seed})"
        )
    frame = summary.sample
    # NaN (no clear observation) is null to great-expectations: column-map expectations skip it
    lo, hi = reflectance_range
    exp = gx.expectations
    suite: list[Any] = [
        exp.ExpectColumnValuesToBeInSet(column="valid", value_set=[True], mostly=max(min_valid_fraction, 1e-9))
        if min_valid_fraction > 0
        else exp.ExpectColumnToExist(column="valid"),
    ]
    suite += [exp.ExpectColumnValuesToBeBetween(column=f"reflectance_{b}", min_value=lo, max_value=hi) for b in bands]
    suite += [
        exp.ExpectColumnValuesToBeBetween(column=f"spread_{b}", min_value=0) for b in bands if "spread" in composite
    ]
    suite += [
        exp.ExpectColumnValuesToBeBetween(column="clear_count", min_value=0),
        exp.ExpectColumnValuesToBeBetween(column="obs_count", min_value=0),
        exp.ExpectColumnPairValuesAToBeGreaterThanB(column_A="obs_count", column_B="clear_count", or_equal=True),
    ]
    return _run("composite", frame, suite)


def validate_vector_layers(
    layers: Mapping[str, Any],
    *,
    crs: Any | None = None,
    geometry_types: Mapping[str, Sequence[str]] = LAYER_GEOMETRY_TYPES,
    min_features: Mapping[str, int] | None = None,
) -> SuiteResult:
    """Validate GIS layers of a tile (GeoDataFrames by layer name).

    Args:
        layers: layer name -> GeoDataFrame.
        crs: the CRS every layer must be in (anything pyproj reads, e.g. "EPSG:32633"); None: any, but set.
        geometry_types: allowed geometry types per layer; a layer not listed allows any.
        min_features: least features per layer (default 0); all layers together need at least one.
    """
    import great_expectations as gx

    want = _crs_text(crs) if crs is not None else None
    needed = dict(min_features or {})
    per_layer = pd.DataFrame(
        {
            "layer": list(layers),
            "crs": [_crs_text(gdf.crs) for gdf in layers.values()],
            "features": [len(gdf) for gdf in layers.values()],
            "features_over_minimum": [len(gdf) - needed.get(name, 0) for name, gdf in layers.items()],
        }
    )
    parts = [
        pd.DataFrame(
            {
                "layer": name,
                "geom_type": gdf.geometry.geom_type.astype(object).fillna("None").to_numpy(),
                "is_valid": gdf.geometry.is_valid.to_numpy(dtype=bool),
                "is_empty": (gdf.geometry.is_empty | gdf.geometry.isna()).to_numpy(dtype=bool),
            }
        )
        for name, gdf in layers.items()
    ]
    empty = pd.DataFrame({"layer": [], "geom_type": [], "is_valid": [], "is_empty": []})
    features = pd.concat(parts, ignore_index=True) if parts else empty
    exp = gx.expectations
    layer_suite: list[Any] = [
        exp.ExpectColumnSumToBeBetween(column="features", min_value=1),
        exp.ExpectColumnValuesToBeBetween(column="features_over_minimum", min_value=0),
        exp.ExpectColumnValuesToNotBeInSet(column="crs", value_set=["None"]),
    ]
    if want is not None:
        layer_suite.append(exp.ExpectColumnValuesToBeInSet(column="crs", value_set=[want]))
    feature_suite: list[Any] = [
        exp.ExpectColumnValuesToBeInSet(column="is_valid", value_set=[True]),
        exp.ExpectColumnValuesToBeInSet(column="is_empty", value_set=[False]),
    ]
    for name in layers:
        allowed = geometry_types.get(name)
        if allowed:
            # one column per layer: rows of other layers are null there, and skipped
            features[f"geom_type_{name}"] = features["geom_type"].where(features["layer"] == name, None)
            feature_suite.append(exp.ExpectColumnValuesToBeInSet(column=f"geom_type_{name}", value_set=list(allowed)))
    a = _run("vector_layers", per_layer, layer_suite)
    b = _run("vector_features", features, feature_suite)
    return SuiteResult("vector_layers", a.success and b.success, a.outcomes + b.outcomes, b.rows)


# --- helpers ------------------------------------------------------------------------------------


def _run(name: str, frame: pd.DataFrame, expectations: list[Any]) -> SuiteResult:
    """Run expectations on a frame in an ephemeral context and collect the outcomes."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    with _CONTEXT_LOCK:
        batch_def = _batch_definition(name)
        suite = gx.ExpectationSuite(name=name)
        for e in expectations:
            suite.add_expectation(e)
        # BASIC: counts and a sample of unexpected values, all the outcomes keep; SUMMARY's index lists
        # and value counts cost about a third more per expectation
        result = batch_def.get_batch(batch_parameters={"dataframe": frame}).validate(suite, result_format="BASIC")
    outcomes = []
    for r in result.results:
        cfg = r.expectation_config
        kwargs = dict(cfg.kwargs) if cfg else {}
        column = kwargs.get("column") or (
            f"{kwargs['column_A']}>={kwargs['column_B']}" if "column_A" in kwargs else None
        )
        res = dict(r.result or {})
        details = {k: res[k] for k in ("observed_value", "unexpected_count", "unexpected_percent") if k in res}
        if res.get("partial_unexpected_list"):
            details["unexpected_sample"] = list(res["partial_unexpected_list"])[:5]
        if r.exception_info and r.exception_info.get("raised_exception"):
            details["exception"] = str(r.exception_info.get("exception_message"))
        outcomes.append(ExpectationOutcome(str(cfg.type) if cfg else "?", column, bool(r.success), details))
    return SuiteResult(name, bool(result.success), outcomes, len(frame))


_CONTEXT_LOCK = threading.Lock()
"""Guards the process's great-expectations context (its stores are not thread-safe)."""
_CONTEXT: Any = None
"""The process's ephemeral great-expectations context, made on first use."""
_BATCH_DEFINITIONS: dict[str, Any] = {}
"""Suite name -> the whole-dataframe batch definition of its asset, in the process's context."""


def _batch_definition(name: str) -> Any:
    """The batch definition of suite ``name``, in one ephemeral context per process (made on first use).

    A context and each data source are made once: making them saves the context's configuration
    each time (about half a second per suite per partition), while the frame is given per validation.
    Call with ``_CONTEXT_LOCK`` held.
    """
    global _CONTEXT
    if name not in _BATCH_DEFINITIONS:
        import great_expectations as gx

        if _CONTEXT is None:
            _CONTEXT = gx.get_context(mode="ephemeral")
            _quiet(_CONTEXT)
        source = _CONTEXT.data_sources.add_pandas(f"{name}_frames")
        _BATCH_DEFINITIONS[name] = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
    from great_expectations.data_context.data_context.context_factory import project_manager

    project_manager.set_project(_CONTEXT)  # the active one again, should other code have made its own since
    return _BATCH_DEFINITIONS[name]


def _quiet(context: Any) -> None:
    """No progress bars on stderr."""
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # an older or newer layout of the config types: bars are cosmetic
        pass


def _crs_text(crs: Any) -> str:
    """A CRS as ``EPSG:nnnn`` when it has an EPSG code, else its WKT; "None" when unset."""
    if crs is None:
        return "None"
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.to_wkt()


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, list | tuple):
            v = [
                x.item() if isinstance(x, np.generic) else x if isinstance(x, int | float | str | bool) else str(x)
                for x in v
            ]
        elif not isinstance(v, int | float | str | bool | type(None)):
            v = str(v)
        out[k] = v
    return out
