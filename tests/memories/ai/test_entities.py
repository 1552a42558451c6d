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


# -- the sample world's memory ----------------------------------------------------

SAMPLE_MONTHS = ("2023-06", "2023-08")  # before and after the new districts (start_date 2023-07-07)


@pytest.fixture(scope="module")
def sample_memory(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The test config's sample world, its GIS layers written as gis_layers does, and the source GeoPackage."""
    from memories.config import config
    from memories.earth.gis import read_layer, write_geoparquet
    from memories.months import month_range
    from memories.sample import SampleWorld, SampleWorldSpec
    from memories.store.paths import StorageRoot

    world = SampleWorld.ensure(SampleWorldSpec.from_settings(config.sample), config.sample.root)
    root = StorageRoot(tmp_path_factory.mktemp("entities_store").as_uri())
    for grid in world.tiles:
        for month in SAMPLE_MONTHS:
            for layer in ("buildings", "places"):
                gdf = read_layer(str(world.gis_path), layer, grid, as_of=month_range(month)[1])
                write_geoparquet(root, root.vector_uri(layer, grid.tile_id, month), gdf)
    source = {layer: gpd.read_file(world.gis_path, layer=layer) for layer in ("buildings", "places")}
    return world, root, source


def _building(source: dict, street: str, number: str, tile: str):  # type: ignore[no-untyped-def]
    """The one source building (EPSG:4326) with this address in the tile."""
    b = source["buildings"]
    rows = b[(b["addr:street"] == street) & (b["addr:housenumber"] == number) & (b["tile_id"] == tile)]
    assert len(rows) == 1, f"{street} {number} in {tile}: {len(rows)} buildings in the sample world"
    return rows.iloc[0]


def _place(source: dict, name: str):  # type: ignore[no-untyped-def]
    p = source["places"]
    rows = p[p["name"] == name]
    assert len(rows) == 1, f"{name}: {len(rows)} places in the sample world"
    return rows.iloc[0]


@pytest.mark.parametrize(
    ("sentence", "street", "number", "tile", "unique"),
    [
        ("The parcel goes to 2 Castle Ln. near the church.", "Castle Lane", "2", "33TVM", True),
        ("Water came up to Harbour St 3 overnight.", "Harbour Street", "3", "33TVM", True),
        ("Inspect the roof at Vinyard Street 2 in Saint-Remy.", "Vineyard Street", "2", "31UDQ", True),  # typo
        ("The meeting is at Mill Rd 1 in Saint-Rémy.", "Mill Road", "1", "31UDQ", False),
        ("The meeting is at Mill Road 1, Brezovica.", "Mill Road", "1", "33TVM", False),
    ],
)
def test_sample_world_addresses_resolve_to_their_buildings_in_the_memory(
    sample_memory, sentence: str, street: str, number: str, tile: str, unique: bool
) -> None:
    world, root, source = sample_memory
    g = Gazetteer.from_memory(root, world.tiles, "2023-08")
    truth = _building(source, street, number, tile)
    others = source["buildings"][
        (source["buildings"]["addr:street"] == street) & (source["buildings"]["addr:housenumber"] == number)
    ]
    assert (len(others) == 1) == unique  # "Mill Road 1" is in both towns: the town named in the text decides
    matches = [m for m in g.resolve(sentence) if m.entity.kind == "address"]
    assert len(matches) == 1
    m = matches[0]
    assert m.feature_id == f"building/{truth['osm_id']}" and m.label == f"{street} {number}"
    assert m.candidates == len(others)
    assert truth.geometry.buffer(1e-7).contains(Point(m.lon, m.lat))  # the point lies on the source building


def test_sample_world_place_names_resolve_with_accents_and_typos(sample_memory) -> None:
    world, root, source = sample_memory
    g = Gazetteer.from_memory(root, ["33TVM", "31UDQ"], "2023-08")
    matches = g.resolve("Flooding was reported in Rakova Jelsa, Les Tilleuls and Brezovca; Saint Remy is dry.")
    names = ["Rakova Jelsa", "Les Tilleuls", "Brezovica", "Saint-Rémy"]
    assert [m.label for m in matches] == names
    for m, name in zip(matches, names, strict=True):
        truth = _place(source, name)
        assert m.feature_id == f"place/{truth['osm_id']}"
        assert (m.lon, m.lat) == pytest.approx((truth.geometry.x, truth.geometry.y), abs=1e-7)
    # "Old Town" is a neighbourhood of both towns: the town the sentence names decides which.
    p = source["places"]
    for sentence, tile in (("Old Town in Saint-Rémy", "31UDQ"), ("Old Town, Brezovica", "33TVM")):
        old_town = g.resolve(sentence)[0]
        want = p[(p["name"] == "Old Town") & (p["tile_id"] == tile)]["osm_id"]
        assert old_town.candidates == 2 and [old_town.feature_id] == [f"place/{i}" for i in want]


def test_the_memory_of_a_month_knows_only_what_was_built_by_then(sample_memory) -> None:
    world, root, source = sample_memory
    june = Gazetteer.from_memory(root, world.tiles, "2023-06")
    august = Gazetteer.from_memory(root, world.tiles, "2023-08")
    new_house = _building(source, "Castle Road", "1", "33TVM")
    assert new_house["start_date"] == "2023-07-07"
    sentence = "Castle Road 1 in New Brezovica"
    got = {m.feature_id for m in august.resolve(sentence)}
    assert got == {f"building/{new_house['osm_id']}", f"place/{_place(source, 'New Brezovica')['osm_id']}"}
    before = june.resolve(sentence)
    assert all(m.entity.kind == "place" and m.label == "Brezovica" for m in before)  # only the old town's name


def test_addresses_the_sample_world_does_not_have_resolve_to_nothing(sample_memory) -> None:
    from memories.errors import StorageError

    world, root, source = sample_memory
    g = Gazetteer.from_memory(root, world.tiles, "2023-08")
    b = source["buildings"]
    highest = int(b.loc[b["addr:street"] == "Castle Lane", "addr:housenumber"].astype(int).max())
    assert g.resolve(f"Castle Lane {highest + 1}") == []  # a real street, no such number
    assert g.resolve(f"{highest + 1} Castle Ln") == []
    assert g.resolve("Nowhere Road 5 is a dead end") == []
    assert g.geocode("Atlantis") is None
    with pytest.raises(StorageError, match=r"2023-05\|33TVM"):
        Gazetteer.from_memory(root, ["33TVM"], "2023-05")
