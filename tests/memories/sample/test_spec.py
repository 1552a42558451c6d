"""The spec: tiles, months, acquisition dates, event dates, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memories.config import SampleSettings
from memories.errors import ConfigError
from memories.sample import SampleWorldSpec


def test_default_spec_is_two_real_utm_tiles_of_512_px() -> None:
    spec = SampleWorldSpec()
    tiles = spec.tiles()
    assert [t.tile_id for t in tiles] == ["33TVM", "31UDQ"]
    assert [t.epsg for t in tiles] == [32633, 32631]
    assert tiles[0].bounds == (460000.0, 5100000.0 - 5120.0, 465120.0, 5100000.0)
    assert tiles[0].shape == (512, 512) and tiles[0].resolution == 10.0
    # 33TVM lies near Ljubljana (14.5 E, 46.05 N).
    w, s, e, n = tiles[0].bbox_wgs84
    assert 14.3 < w < e < 14.6 and 45.9 < s < n < 46.1


def test_tiles_keep_catalogue_order_when_truncated() -> None:
    four = [t.tile_id for t in SampleWorldSpec(n_tiles=4).tiles()]
    assert four == ["33TVM", "31UDQ", "33UXP", "34TCT"]
    assert [t.tile_id for t in SampleWorldSpec(n_tiles=1).tiles()] == ["33TVM"]


def test_months_are_consecutive_keys_across_the_year_end() -> None:
    assert SampleWorldSpec(start_month="2023-11", n_months=3).months() == ["2023-11", "2023-12", "2024-01"]


def test_scene_datetimes_are_utc_morning_every_revisit_within_range() -> None:
    spec = SampleWorldSpec(n_months=2, revisit_days=5)
    start, end = spec.time_range
    for tile_id in spec.tile_ids():
        times = spec.scene_datetimes(tile_id)
        assert times[0].tzinfo == UTC and times[0].hour == 10 and 20 <= times[0].minute < 30
        assert all(b - a == timedelta(days=5) for a, b in zip(times, times[1:]))
        assert start <= times[0] < start + timedelta(days=5) and times[-1] < end <= times[-1] + timedelta(days=5)
    # The two tiles are seen on different days, like neighbouring orbits.
    assert spec.scene_datetimes("33TVM")[0].date() != spec.scene_datetimes("31UDQ")[0].date()


def test_events_start_at_fixed_fractions_of_the_range() -> None:
    spec = SampleWorldSpec(start_month="2023-01", n_months=24)
    assert spec.event_start("clear_cut") == datetime(2023, 10, 20, tzinfo=UTC)  # 0.4 x 731 days
    assert spec.event_start("clear_cut") < spec.event_start("new_district") < spec.event_start("flood")
    short = SampleWorldSpec(start_month="2023-01", n_months=3)
    assert short.event_start("flood") + timedelta(days=21) < short.time_range[1]


def test_from_settings_copies_every_field() -> None:
    s = SampleSettings(seed=3, n_tiles=3, start_month="2022-04", n_months=5, size_px=128, revisit_days=10)
    spec = SampleWorldSpec.from_settings(s)
    assert spec == SampleWorldSpec(seed=3, n_tiles=3, start_month="2022-04", n_months=5, size_px=128, revisit_days=10)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"n_tiles": 5}, "n_tiles=5"),
        ({"size_px": 97}, "size_px=97"),
        ({"start_month": "2023-13"}, "2023-13"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_invalid_spec_names_the_value(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        SampleWorldSpec(**kwargs)  # type: ignore[arg-type]


def test_unknown_tile_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="33TVM"):
        SampleWorldSpec(n_tiles=1).scene_datetimes("31UDQ")
