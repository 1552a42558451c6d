"""Socioeconomic tables joined to regions: real US census income, flaws planted in a copy."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from memories.earth.socioeconomic import SocioeconomicData, wide_to_long
from memories.errors import ConfigError
from tests.real_data import SHARED_DATA, needs_data

CENSUS = SHARED_DATA / "census"
needs_census = needs_data(CENSUS / "usjoin.csv", CENSUS / "us48.shp")


def _join(table: pd.DataFrame) -> object:
    states = gpd.read_file(CENSUS / "us48.shp")
    long = wide_to_long(table, ["Name", "STATE_FIPS"], "income_per_capita")
    return SocioeconomicData(max_change=0.5).join(
        long,
        states,
        table_name="Name",
        region_name="STATE_NAME",
        values=["income_per_capita"],
        table_code="STATE_FIPS",
        region_code="STATE_FIPS",
    )


@needs_census
def test_real_income_table_joins_all_48_states() -> None:
    result = _join(pd.read_csv(CENSUS / "usjoin.csv"))
    s = result.summary  # type: ignore[attr-defined]
    assert s["regions_joined"] == 48 and s["polygons_without_data"] == []
    assert s["rows"] == 48 * (2009 - 1929 + 1)
    assert s["flag_unmatched"] == s["flag_gap"] == s["flag_missing"] == s["flag_duplicate"] == 0
    # The real series has nine changes above 50 % a year: the Dust Bowl rebound and the war.
    table = result.table  # type: ignore[attr-defined]
    jumps = table[table["flag_jump"]]
    assert sorted(set(jumps["year"])) == [1934, 1935, 1942]
    assert len(jumps) == s["flag_jump"] == 9
    idaho = table[(table["region"] == "Idaho") & table["year"].isin([1933, 1934])]["income_per_capita"].tolist()
    assert idaho[1] / idaho[0] - 1 > 0.5
    regions = result.regions  # type: ignore[attr-defined]
    texas = regions[regions["STATE_NAME"] == "Texas"]
    assert (
        texas["latest_income_per_capita"].iloc[0]
        == pd.read_csv(CENSUS / "usjoin.csv").set_index("Name").loc["Texas", "2009"]
    )


@needs_census
def test_planted_flaws_are_flagged(tmp_path: Path) -> None:
    table = pd.read_csv(CENSUS / "usjoin.csv")
    table.loc[table["Name"] == "Ohio", "1950"] = None  # an empty cell
    table.loc[table["Name"] == "Texas", "1990"] = -5  # a bad value
    table.loc[table["Name"] == "Kansas", "Name"] = "Kansass"  # a misspelt name
    table.loc[table["Name"] == "Utah", "STATE_FIPS"] = 99  # a wrong code
    table = pd.concat([table, table[table["Name"] == "Iowa"]], ignore_index=True)  # a duplicate
    copy = tmp_path / "usjoin_flawed.csv"
    table.to_csv(copy, index=False)
    result = _join(pd.read_csv(copy))
    t, s = result.table, result.summary  # type: ignore[attr-defined]

    def flagged(flag: str) -> set[tuple[str, int]]:
        return set(zip(t.loc[t[flag], "region"], t.loc[t[flag], "year"]))

    assert flagged("flag_missing") == {("Ohio", 1950)}
    assert ("Texas", 1990) in flagged("flag_implausible") and len(flagged("flag_implausible")) == 1
    assert {("Texas", 1990), ("Texas", 1991)} <= flagged("flag_jump")  # down to -5 and back
    assert s["flag_unmatched"] == 81 and {r for r, _ in flagged("flag_unmatched")} == {"Kansass"}
    assert s["polygons_without_data"] == ["Kansas"] and s["regions_joined"] == 47
    assert {r for r, _ in flagged("flag_code_mismatch")} == {"Utah"}
    assert s["flag_duplicate"] == 2 * 81 and {r for r, _ in flagged("flag_duplicate")} == {"Iowa"}


def test_a_missing_year_row_is_a_gap(tmp_path: Path) -> None:
    long = pd.DataFrame(
        {"name": ["A", "A", "A", "B", "B"], "year": [2001, 2002, 2003, 2001, 2003], "pop": [10, 11, 12, 5, 5]}
    )
    regions = gpd.GeoDataFrame({"name": ["A", "B"]}, geometry=gpd.points_from_xy([0, 1], [0, 1]), crs="EPSG:4326")
    result = SocioeconomicData().join(long, regions, table_name="name", region_name="name", values=["pop"])
    gap = result.table[result.table["flag_gap"]]
    assert gap[["region", "year"]].values.tolist() == [["B", 2002]] and gap["pop"].isna().all()
    assert result.summary["flagged_rows"] == 1 and gap["flags"].iloc[0] == "gap"


def test_missing_columns_are_named() -> None:
    with pytest.raises(ConfigError, match="lacks columns \\['income'\\]"):
        SocioeconomicData().join(
            pd.DataFrame({"n": ["A"], "year": [1]}),
            gpd.GeoDataFrame({"n": ["A"]}, geometry=gpd.points_from_xy([0], [0])),
            table_name="n",
            region_name="n",
            values=["income"],
        )
