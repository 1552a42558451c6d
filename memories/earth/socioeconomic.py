"""Socioeconomic tables joined to region polygons, with their flaws flagged, not hidden.

A table gives values per region and year (long: one row per region-year, or
wide: one column per year, see ``wide_to_long``). ``SocioeconomicData.join``
matches its regions to polygons by name (case and spacing ignored) and, when
both sides carry one, by code (FIPS, district id), and returns every row with
flag columns:

| flag | meaning |
| --- | --- |
| ``flag_unmatched`` | the table's region has no polygon (a misspelt or retired name) |
| ``flag_code_mismatch`` | the name matches a polygon whose code differs |
| ``flag_duplicate`` | the same region and year appear more than once |
| ``flag_gap`` | a year inside the table's range has no row for the region (a row is inserted, values NaN) |
| ``flag_missing`` | a value is empty |
| ``flag_implausible`` | a value is below ``min_value`` or above ``max_value`` |
| ``flag_jump`` | a value changed by more than ``max_change`` (relative) from the region's previous year |

Polygons without any table row are listed in the summary and marked
``has_data = False`` on the regions frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memories.errors import ConfigError

FLAGS: tuple[str, ...] = (
    "flag_unmatched",
    "flag_code_mismatch",
    "flag_duplicate",
    "flag_gap",
    "flag_missing",
    "flag_implausible",
    "flag_jump",
)


@dataclass
class SocioeconomicJoin:
    """The result of a join.

    Attributes:
        table: long frame: ``region``, ``code``, ``year``, the value columns,
            ``region_id`` (the matched polygon's name, None if unmatched), the
            ``FLAGS`` (bool) and ``flags`` (comma-separated names, for people).
        regions: the polygons with ``has_data``, ``n_flagged_rows`` and the
            latest year's values.
        summary: counts: ``rows``, ``regions_in_table``, ``regions_joined``,
            ``polygons_without_data`` (names), one count per flag, ``flagged_rows``.
    """

    table: Any
    regions: Any
    summary: dict[str, Any] = field(default_factory=dict)


def wide_to_long(frame: Any, id_columns: Sequence[str], value_name: str) -> Any:
    """A wide table (one column per year, named by the year) as long rows ``id..., year, value_name``.

    Columns that are neither ids nor four-digit years are refused, so a stray
    column cannot pass as data.
    """
    import pandas as pd

    year_cols = [c for c in frame.columns if str(c).strip().isdigit() and len(str(c).strip()) == 4]
    other = [c for c in frame.columns if c not in year_cols and c not in id_columns]
    if other:
        raise ConfigError(f"wide table has columns {other} that are neither ids {list(id_columns)} nor years")
    long = frame.melt(id_vars=list(id_columns), value_vars=year_cols, var_name="year", value_name=value_name)
    long["year"] = long["year"].astype(str).str.strip().astype(int)
    long[value_name] = pd.to_numeric(long[value_name], errors="coerce")
    return long


class SocioeconomicData:
    """Joins socioeconomic tables to regions and flags what does not add up (the seed's name).

    Args:
        max_change: largest plausible relative change from one year to the next
            (0.5 = 50 %).
        min_value: smallest plausible value (0: counts and incomes are not negative).
        max_value: largest plausible value, None for no bound.
    """

    def __init__(self, *, max_change: float = 0.5, min_value: float = 0.0, max_value: float | None = None) -> None:
        if max_change <= 0:
            raise ConfigError(f"max_change={max_change}: use a positive fraction, e.g. 0.5 for 50 %")
        self.max_change = max_change
        self.min_value = min_value
        self.max_value = max_value

    def join(
        self,
        table: Any,
        regions: Any,
        *,
        table_name: str,
        region_name: str,
        values: Sequence[str],
        year: str = "year",
        table_code: str | None = None,
        region_code: str | None = None,
    ) -> SocioeconomicJoin:
        """Join a long table to region polygons and flag its flaws.

        Args:
            table: long frame with a region name column, ``year`` and ``values``.
            regions: GeoDataFrame of region polygons.
            table_name: region name column of the table.
            region_name: name column of the polygons.
            values: the value columns to check.
            year: the year column of the table.
            table_code: optional code column of the table (e.g. FIPS).
            region_code: the polygons' code column, compared as integers when both
                sides are numeric-like, else as stripped strings.
        """
        _check_columns(
            ("table", table, [table_name, year, *values, *([table_code] if table_code else [])]),
            ("regions", regions, [region_name, *([region_code] if region_code else [])]),
        )
        t, years = _long_rows(table, table_name, year, values, table_code)
        poly_key = regions[region_name].astype(str).map(_norm)
        poly_name = dict(zip(poly_key, regions[region_name].astype(str)))
        t["region_id"] = t["key"].map(poly_name)
        t["flag_unmatched"] = t["region_id"].isna()
        if region_code and table_code:
            poly_code = dict(zip(poly_key, regions[region_code].map(_code)))
            expected = t["key"].map(poly_code)
            t["flag_code_mismatch"] = ~t["flag_unmatched"] & (expected != t["code"])
        else:
            t["flag_code_mismatch"] = False
        self._flag_values(t, values)
        t["flags"] = [",".join(f[5:] for f in FLAGS if row[f]) for _, row in t[list(FLAGS)].iterrows()]
        table_out = t[["region", "code", "year", *values, "region_id", *FLAGS, "flags"]]
        regions_out, joined = _regions_with_data(regions, poly_key, t, values)
        summary: dict[str, Any] = {
            "rows": len(table_out),
            "regions_in_table": int(t["key"].nunique()),
            "regions_joined": len(joined),
            "polygons_without_data": sorted(regions_out.loc[~regions_out["has_data"], region_name].astype(str)),
            "years": [years.start, years.stop - 1],
            **{f: int(t[f].sum()) for f in FLAGS},
            "flagged_rows": int((t["flags"] != "").sum()),
        }
        return SocioeconomicJoin(table_out, regions_out, summary)

    def _flag_values(self, t: Any, values: Sequence[str]) -> None:
        """Set ``flag_missing``, ``flag_implausible`` (outside [min_value, max_value]) and ``flag_jump`` in ``t``."""
        import numpy as np

        vals = t[list(values)]
        t["flag_missing"] = vals.isna().any(axis=1) & ~t["flag_gap"]
        too_low = (vals < self.min_value).any(axis=1)
        too_high = (vals > self.max_value).any(axis=1) if self.max_value is not None else False
        t["flag_implausible"] = too_low | too_high
        prev = t.groupby("key")[list(values)].shift(1)
        prev_year = t.groupby("key")["year"].shift(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = (vals / prev - 1).abs()
        t["flag_jump"] = ((change > self.max_change) & (prev_year == t["year"] - 1).to_numpy()[:, None]).any(axis=1)


def _check_columns(*frames: tuple[str, Any, list[str]]) -> None:
    """Raise ``ConfigError`` naming the first frame that lacks one of its columns."""
    for name, frame, cols in frames:
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ConfigError(f"{name} lacks columns {missing}; it has {list(frame.columns)}")


def _long_rows(
    table: Any, table_name: str, year: str, values: Sequence[str], table_code: str | None
) -> tuple[Any, range]:
    """The table as normalized long rows (region, code, year, values, key), gap rows added, and its years.

    ``flag_duplicate`` marks repeated (region, year) rows; ``flag_gap`` the added rows of a year the
    table's range has but a region lacks.
    """
    import pandas as pd

    t = pd.DataFrame(
        {
            "region": table[table_name].astype(str).str.strip(),
            "code": table[table_code].map(_code) if table_code else None,
            "year": pd.to_numeric(table[year], errors="coerce").astype("Int64"),
            **{v: pd.to_numeric(table[v], errors="coerce") for v in values},
        }
    )
    t["key"] = t["region"].map(_norm)
    t["flag_duplicate"] = t.duplicated(["key", "year"], keep=False)
    # Gaps: every region should have every year of the table's range.
    years = range(int(t["year"].min()), int(t["year"].max()) + 1)
    have = set(zip(t["key"], t["year"].astype(int)))
    first = t.drop_duplicates("key").set_index("key")
    gaps = [
        {"region": first.loc[k, "region"], "code": first.loc[k, "code"], "year": y, "key": k}
        for k in first.index
        for y in years
        if (k, y) not in have
    ]
    t["flag_gap"] = False
    if gaps:
        g = pd.DataFrame(gaps)
        g["flag_gap"] = True
        g["flag_duplicate"] = False
        t = pd.concat([t, g], ignore_index=True)
    t["year"] = t["year"].astype(int)
    return t.sort_values(["key", "year"], kind="stable").reset_index(drop=True), years


def _regions_with_data(regions: Any, poly_key: Any, t: Any, values: Sequence[str]) -> tuple[Any, set[str]]:
    """The polygons with ``has_data``, ``n_flagged_rows`` and ``latest_<value>``, and the joined region keys."""
    import numpy as np

    joined = set(t.loc[~t["flag_unmatched"], "key"])
    regions_out = regions.copy()
    regions_out["has_data"] = poly_key.isin(joined).to_numpy()
    flagged = t[t["flags"] != ""].groupby("key").size()
    regions_out["n_flagged_rows"] = poly_key.map(flagged).fillna(0).astype(int).to_numpy()
    latest = t[~t["flag_unmatched"]].sort_values("year").groupby("key").last()
    for v in values:
        regions_out[f"latest_{v}"] = poly_key.map(latest[v]).to_numpy() if len(latest) else np.nan
    return regions_out, joined


def _norm(name: Any) -> str:
    return " ".join(str(name).split()).casefold()


def _code(value: Any) -> Any:
    """A code as an int when it reads as one (``"01"`` and ``1`` agree), else a stripped string."""
    if value is None or value != value:
        return None
    s = str(value).strip()
    return int(s) if s.lstrip("-").isdigit() else s
