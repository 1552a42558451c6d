"""Scene tables: what is kept of the items a STAC search returned."""


def test_stored_items_do_not_depend_on_the_api_that_found_them():
    import json

    import pystac

    from memories.earth.stac import items_from_table, items_table

    item = pystac.Item.from_dict(
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": "S2A_33TVM_20230105_0_L2A",
            "geometry": {"type": "Point", "coordinates": [14.5, 46.0]},
            "bbox": [14.5, 46.0, 14.5, 46.0],
            "properties": {"datetime": "2023-01-05T10:20:00Z", "grid:code": "MGRS-33TVM", "eo:cloud_cover": 12.5},
            "links": [
                {"rel": "root", "href": "http://127.0.0.1:1/"},
                {"rel": "collection", "href": "http://127.0.0.1:1/c"},
            ],
            "assets": {"red": {"href": "/data/red.tif"}},
        }
    )
    table = items_table([item])
    assert table.loc[0, "tile"] == "33TVM" and table.loc[0, "cloud_cover"] == 12.5
    assert json.loads(table.loc[0, "item_json"])["links"] == []
    back = items_from_table(table)[0]
    assert back.id == item.id and back.assets["red"].href == "/data/red.tif"
