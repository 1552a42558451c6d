"""The multi-modal land-use model learns from the modality that carries the signal and attends to it."""

from __future__ import annotations

import numpy as np
import pytest

from memories.ai.multimodal_data import ModalityInputs, byte_ngrams, feature_text, gram_matrix, modality_inputs
from memories.config import ModelSettings
from memories.errors import ProcessingError
from memories.grid import TileGrid

BANDS = ["blue", "green", "red", "nir", "swir16", "swir22"]
SIZE = 64
GRID = TileGrid(tile_id="33TVM", epsg=32633, x_min=460000.0, y_max=5100000.0, width=SIZE, height=SIZE)
SETTINGS = ModelSettings(width=8, max_epochs=6, patch_px=16, patches_per_scene=64, seed=5)
TEXT_OF = {2: "Black Pine Wood", 3: "Wheat Farm Fields"}


def _text_scene(seed: int) -> tuple[np.ndarray, dict[str, object], np.ndarray]:
    """Regions of forest (2) or cropland (3) around named points; the imagery is the same noise for both.

    Only the name of the nearest point tells the class, so text is the one informative modality.
    """
    import geopandas as gpd
    from shapely.geometry import Point

    rng = np.random.default_rng(seed)
    centres = rng.integers(2, SIZE - 2, size=(14, 2))
    codes = np.array([2, 3])[np.arange(14) % 2]
    rr, cc = np.mgrid[0:SIZE, 0:SIZE]
    truth = codes[((rr[..., None] - centres[:, 0]) ** 2 + (cc[..., None] - centres[:, 1]) ** 2).argmin(-1)]
    points = [Point(GRID.x_min + (c + 0.5) * 10, GRID.y_max - (r + 0.5) * 10) for r, c in centres]
    places = gpd.GeoDataFrame(
        {"osm_id": range(14), "place": "locality", "name": [TEXT_OF[int(k)] for k in codes]},
        geometry=points,
        crs=GRID.crs,
    )
    x = rng.uniform(0.05, 0.3, (len(BANDS), SIZE, SIZE)).astype(np.float32)
    return x, {"places": places}, truth.astype(np.uint8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """Tiny convolutions run ~10x faster on one thread than on two contended ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def text_samples():  # type: ignore[no-untyped-def]
    from memories.ai.multimodal import MultiModalSample

    out = []
    for seed in (1, 2, 3):
        x, layers, truth = _text_scene(seed)
        m = modality_inputs(layers, GRID, radius_m=2000.0)
        out.append(MultiModalSample(x, m, truth))
    return out


@pytest.fixture(scope="module")
def text_model(text_samples):  # type: ignore[no-untyped-def]
    from memories.ai.multimodal import train_multimodal

    return train_multimodal(text_samples, band_names=BANDS, settings=SETTINGS, accelerator="cpu")


def test_nearest_text_and_coverage_on_the_grid() -> None:
    import geopandas as gpd
    from shapely.geometry import LineString, Point, box

    x0, y1 = GRID.x_min, GRID.y_max
    roads = gpd.GeoDataFrame(
        {"highway": ["residential"], "name": ["Linden Street"], "osm_id": [7]},
        geometry=[LineString([(x0, y1 - 105), (x0 + 640, y1 - 105)])],  # along row 10
        crs=GRID.crs,
    )
    water = gpd.GeoDataFrame({"natural": ["water"]}, geometry=[box(x0, y1 - 640, x0 + 100, y1 - 540)], crs=GRID.crs)
    m = modality_inputs(
        {"roads": roads, "water": water, "places": gpd.GeoDataFrame(geometry=[Point(x0 + 5, y1 - 5)])}, GRID
    )
    assert m.context_names == ("roads", "buildings", "water")
    np.testing.assert_array_equal(np.flatnonzero(m.context[0].any(axis=1)), [10])
    assert m.context[1].sum() == 0
    assert m.context[2].sum() == 100  # 10 x 10 pixels of lake in the bottom-left corner
    assert m.texts[0] == "roads highway=residential name=Linden Street"  # osm_id is no text
    roads_ids, roads_m = m.text_ids[0], m.text_distance[0]
    assert roads_ids[10, 5] == 0 and roads_m[10, 5] == 0
    assert roads_m[20, 5] == pytest.approx(100.0)  # ten rows away, 10 m pixels
    assert roads_ids[50, 5] == -1 and roads_m[50, 5] == 300.0  # beyond TEXT_RADIUS_M
    assert (m.text_ids[1] == -1).all()  # no buildings
    # Texts in layer order (roads, buildings, water, places); a point without tags still names its layer.
    assert m.texts[1:] == ("water natural=water", "places")
    assert m.text_ids[2][60, 0] == 1 and m.text_ids[3][0, 0] == 2 and m.text_ids[2][0, 0] == -1
    with pytest.raises(ProcessingError, match="landuse"):
        modality_inputs({}, GRID, text_layers=("landuse",))


def test_byte_ngrams_are_stable_and_case_free() -> None:
    a = byte_ngrams("Linden Street")
    assert a == byte_ngrams("LINDEN STREET")
    assert all(1 <= g < 2048 for g in a)
    assert len(a) == 3 * 15 - 3  # 1-, 2- and 3-grams of 13 bytes framed by two markers
    assert byte_ngrams("Linden Street") != byte_ngrams("Linden Strasse")
    g = gram_matrix(["a", "Linden Street"])
    assert g.shape == (2, len(a)) and (g[0, :6] > 0).all() and (g[0, 6:] == 0).all()  # "a" framed: 6 n-grams
    assert feature_text("water", {"natural": "water", "name": None, "class_code": 1}) == "water natural=water"


def test_learns_from_text_where_imagery_says_nothing(text_model, text_samples) -> None:  # type: ignore[no-untyped-def]
    from memories.ai.land_cover import train_land_cover

    assert text_model.metrics["val_accuracy"] > 0.9
    image_only = train_land_cover(
        [(s.reflectance, s.labels) for s in text_samples], band_names=BANDS, settings=SETTINGS, accelerator="cpu"
    )
    # Same split, same noise: the U-Net cannot do better than guessing.
    assert image_only.metrics["val_accuracy"] < 0.75
    assert image_only.metrics["n_val_pixels"] == text_model.metrics["n_val_pixels"]


def test_attention_goes_to_the_informative_modality(text_model) -> None:  # type: ignore[no-untyped-def]
    from memories.ai.multimodal import predict_multimodal

    x, layers, truth = _text_scene(11)
    model = text_model.model
    classes, confidence, attention = predict_multimodal(model, x, modality_inputs(layers, GRID, radius_m=2000.0))
    assert (classes == truth).mean() > 0.9
    assert model.modality_names == ["image", "context", "text:roads", "text:buildings", "text:water", "text:places"]
    assert attention.shape == (6, SIZE, SIZE)
    np.testing.assert_allclose(attention.sum(axis=0), 1.0, atol=1e-4)
    mean = attention.reshape(6, -1).mean(axis=1)
    assert mean.argmax() == 5 and mean[5] > 0.5, dict(zip(model.modality_names, mean.round(3)))
    # Without the text the model has nothing to go on.
    blind, _, _ = predict_multimodal(model, x, ModalityInputs.empty((SIZE, SIZE)))
    assert (blind == truth).mean() < 0.75


def test_registered_and_reloaded_predicts_the_same(text_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from memories.ai.multimodal import MultiModalLandUse, predict_multimodal
    from memories.ai.registry import ModelRegistry
    from memories.store.paths import StorageRoot

    registry = ModelRegistry(StorageRoot(tmp_path.as_uri()))
    version = registry.register("multimodal_land_use", text_model.model, text_model.metrics, training_data={"t": 1})
    assert version.model_class == "memories.ai.multimodal.MultiModalLandUse"
    loaded = registry.load("multimodal_land_use")
    assert isinstance(loaded, MultiModalLandUse)
    x, layers, _ = _text_scene(12)
    m = modality_inputs(layers, GRID, radius_m=2000.0)
    a = predict_multimodal(text_model.model, x, m)
    b = predict_multimodal(loaded, x, m)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[2], b[2], atol=1e-5)
