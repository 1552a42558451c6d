"""Addresses and place names in text, resolved against real OSM buildings of central Helsinki."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from pyproj import Transformer
from shapely.geometry import Point, box

from memories.ai.entities import Gazetteer, expand_other_tags, extract_entities, normalize

PBF = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "osm" / "Helsinki.osm.pbf"


@pytest.fixture(scope="module")
def helsinki() -> Gazetteer:
    """Buildings (with addr:* from other_tags) and place points of the real Helsinki extract."""
    import pyogrio

    if not PBF.exists():
        pytest.fail(f"real data missing at {PBF}; see ../shared/data/README.md")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GDAL's notes on unclosed OSM rings
        polygons = pyogrio.read_dataframe(PBF, layer="multipolygons", on_invalid="ignore")
        points = pyogrio.read_dataframe(PBF, layer="points")
    buildings = expand_other_tags(polygons[polygons["building"].notna()])
    return Gazetteer.from_frames(buildings, points[points["place"].notna()])


@pytest.mark.parametrize(
    ("sentence", "label", "lon", "lat"),
    [
        # Real buildings of the extract: addr:street + addr:housenumber as OSM has them.
        ("Meet me at Mannerheimintie 22-24 tomorrow.", "Mannerheimintie 22-24", 24.9369, 60.1703),
        ("The office is at Unionink. 33 B, second floor.", "Unioninkatu 33b", 24.9511, 60.1722),
        ("Deliveries go to Fabianinktu 12 (the Grönqvist house).", "Fabianinkatu 12", 24.9478, 60.1681),
        ("The ministry at Etelaesplanadi 16 is closed.", "Eteläesplanadi 16", 24.9467, 60.1669),
        ("Snellmaninkatu 14 A", "Snellmaninkatu 14A", 24.9529, 60.1736),
    ],
)
def test_real_addresses_with_abbreviations_and_typos_resolve(
    helsinki: Gazetteer, sentence: str, label: str, lon: float, lat: float
) -> None:
    matches = [m for m in helsinki.resolve(sentence) if m.entity.kind == "address"]
    assert len(matches) == 1
    m = matches[0]
    assert m.label == label and m.feature_id.startswith("building/")
    assert m.score >= 0.85
    assert (m.lon, m.lat) == pytest.approx((lon, lat), abs=2e-4)


def test_building_name_and_its_address_are_the_same_feature(helsinki: Gazetteer) -> None:
    matches = helsinki.resolve("Kiasma, the museum at Mannerheiminaukio 2, opens at ten.")
    assert [m.entity.kind for m in matches] == ["place", "address"]
    assert matches[0].label == "Kiasma"
    assert matches[0].feature_id == matches[1].feature_id
    typed = helsinki.geocode("snellmaninkatu 14a")
    assert typed is not None and typed.label == "Snellmaninkatu 14A"
    geocoded = helsinki.geocode("Kauppakeskus Kluuvi")
    assert geocoded is not None and geocoded.feature_id == helsinki.geocode("Aleksanterinkatu 9").feature_id  # type: ignore[union-attr]


def test_unknown_addresses_resolve_to_nothing(helsinki: Gazetteer) -> None:
    assert helsinki.resolve("Mannerheimintie 9999") == []  # real street, no such number
    assert helsinki.resolve("Nonexistentkatu 5") == []
    assert helsinki.resolve("Baker Street 221b is in London") == []
    assert helsinki.geocode("Springfield") is None


def test_english_and_european_address_forms_are_extracted() -> None:
    entities = extract_entities("Send it to 123 Main St, or 10 Downing Street, or Hauptstr. 5, or Kaivokatu 8.")
    assert [(e.street, e.housenumber) for e in entities] == [
        ("Main St", "123"),
        ("Downing Street", "10"),
        ("Hauptstr.", "5"),
        ("Kaivokatu", "8"),
    ]
    assert normalize("Main St.") == normalize("MAIN STREET") == "main street"
    assert normalize("Hauptstr.") == normalize("Hauptstraße") == "hauptstrasse"
    # No gazetteer: capitalised words alone are not places.
    assert extract_entities("Alice met Bob in Paris") == []


def test_gazetteer_of_projected_frames_resolves_main_street() -> None:
    # Sample-world style frames in a UTM CRS, as the GIS layers store them.
    buildings = gpd.GeoDataFrame(
        {
            "name": ["Town Hall", None],
            "addr:street": ["Main Street", "Main Street"],
            "addr:housenumber": ["1", "123"],
        },
        geometry=[box(500000, 5100000, 500020, 5100020), box(500100, 5100000, 500110, 5100010)],
        crs=32633,
    )
    places = gpd.GeoDataFrame({"name": ["Riverside Park"]}, geometry=[Point(500500, 5100500)], crs=32633)
    g = Gazetteer.from_frames(buildings, places)
    m = g.geocode("123 Main St")
    assert m is not None and m.label == "Main Street 123" and m.feature_id == "building/1"
    want = Transformer.from_crs(32633, 4326, always_xy=True).transform(500105.0, 5100005.0)  # the building's centre
    assert (m.lon, m.lat) == pytest.approx(want, abs=1e-6)
    park = g.resolve("Picnic in Riverside Park at noon")
    assert [p.label for p in park] == ["Riverside Park"]
    assert g.resolve("124 Main St") == []
    with pytest.raises(Exception, match="CRS"):
        Gazetteer.from_frames(pd.DataFrame({"name": ["x"]}).pipe(gpd.GeoDataFrame, geometry=[Point(0, 0)]))
