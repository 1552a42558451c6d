"""The non-image modalities of the multi-modal land-use model, on the tile grid.

Two modalities come from the GIS layers of a tile-month (OSM-style tags):

- **context rasters**: float32 ``(R, y, x)``. By default the coverage (0/1,
  pixel centres; lines and points burn every pixel they touch) of
  :data:`VECTOR_LAYERS` (roads, buildings, water). Other rasters on the same grid
  (an elevation model, in metres) may be stacked instead; the model normalizes
  each channel with statistics it stores.
- **text**: for each of :data:`TEXT_LAYERS`, every pixel points to the *nearest*
  feature of that layer within :data:`TEXT_RADIUS_M` (index into ``texts``, -1
  where none) and holds its distance in metres. A feature's text is its layer
  and its non-empty tags, ``"roads highway=residential name=Linden Street"``.

The ``landuse`` layer is never an input: the training labels are burned from it
(:func:`memories.earth.gis.rasterize_labels`), so its tags would hand the model
the answer.

Text is embedded *tokenizer-free* and offline: :func:`byte_ngrams` hashes the
UTF-8 byte 1-, 2- and 3-grams of a text (with boundary markers) into
``n_buckets`` buckets with CRC-32 (stable across processes, unlike ``hash``);
the model learns one embedding per bucket and averages them.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memories.errors import ProcessingError
from memories.grid import TileGrid

__all__ = [
    "TEXT_LAYERS",
    "TEXT_RADIUS_M",
    "VECTOR_LAYERS",
    "ModalityInputs",
    "byte_ngrams",
    "feature_text",
    "gram_matrix",
    "modality_inputs",
]

VECTOR_LAYERS: tuple[str, ...] = ("roads", "buildings", "water")
"""GIS layers rasterized as context channels (coverage 0/1)."""
TEXT_LAYERS: tuple[str, ...] = ("roads", "buildings", "water", "places")
"""GIS layers whose features' tags and names are the text modality, one token per layer and pixel."""
TEXT_RADIUS_M = 300.0
"""A pixel sees the nearest feature of a text layer up to this distance, metres."""
N_BUCKETS = 2048
"""Hash buckets of the byte n-grams (bucket 0 is padding)."""
MAX_GRAMS = 96
"""Byte n-grams kept per text (the first ones: layer and tags come first, then the name)."""

_SKIP_COLUMNS = frozenset({"osm_id", "tile_id", "start_date", "class_code", "geometry"})
"""Columns that are identifiers, dates or the sample world's own truth codes, not OSM text."""


@dataclass(frozen=True)
class ModalityInputs:
    """The context rasters and the text of one scene, on its grid."""

    context: np.ndarray
    """float32 ``(R, H, W)``: coverage 0/1 of each vector layer (or other rasters on the grid)."""
    context_names: tuple[str, ...]
    """Name of each context channel."""
    text_ids: np.ndarray
    """int32 ``(L, H, W)``: per text layer, index into ``texts`` of the nearest feature, -1 where none."""
    text_distance: np.ndarray
    """float32 ``(L, H, W)``: metres to that feature; ``TEXT_RADIUS_M`` where none."""
    text_layers: tuple[str, ...]
    texts: tuple[str, ...]
    """The feature texts the ids point to."""

    def __post_init__(self) -> None:
        shape = self.context.shape[1:]
        if self.text_ids.shape[1:] != shape or self.text_distance.shape != self.text_ids.shape:
            raise ProcessingError(
                f"context {self.context.shape}, text_ids {self.text_ids.shape} and text_distance "
                f"{self.text_distance.shape} must share one grid; build them with modality_inputs"
            )
        if len(self.context_names) != self.context.shape[0] or len(self.text_layers) != self.text_ids.shape[0]:
            raise ProcessingError(
                f"{len(self.context_names)} context names for {self.context.shape[0]} channels and "
                f"{len(self.text_layers)} text layers for {self.text_ids.shape[0]}: give one name per channel"
            )

    @classmethod
    def empty(
        cls,
        shape: tuple[int, int],
        context_names: Sequence[str] = VECTOR_LAYERS,
        text_layers: Sequence[str] = TEXT_LAYERS,
    ) -> ModalityInputs:
        """No vector data and no text (a place with no map): zero context, no text token."""
        n_r, n_l = len(context_names), len(text_layers)
        return cls(
            context=np.zeros((n_r, *shape), np.float32),
            context_names=tuple(context_names),
            text_ids=np.full((n_l, *shape), -1, np.int32),
            text_distance=np.full((n_l, *shape), TEXT_RADIUS_M, np.float32),
            text_layers=tuple(text_layers),
            texts=(),
        )


def modality_inputs(
    layers: Mapping[str, Any],
    grid: TileGrid,
    *,
    vector_layers: Sequence[str] = VECTOR_LAYERS,
    text_layers: Sequence[str] = TEXT_LAYERS,
    radius_m: float = TEXT_RADIUS_M,
) -> ModalityInputs:
    """Context rasters and text of the GIS layers of one tile (GeoDataFrames in the tile CRS).

    A layer missing from ``layers`` or empty gives a zero channel and no text.

    Raises:
        ProcessingError: ``landuse`` is asked for as an input (it is the label source).
    """
    if "landuse" in vector_layers or "landuse" in text_layers:
        raise ProcessingError(
            "the landuse layer is where land-use labels come from; as an input it would leak them. "
            f"Use vector_layers/text_layers without it, e.g. {VECTOR_LAYERS} and {TEXT_LAYERS}"
        )
    context = np.stack([_coverage(layers.get(name), grid) for name in vector_layers]).astype(np.float32)
    texts: list[str] = []
    ids, dist = [], []
    for name in text_layers:
        gdf = layers.get(name)
        i, d = _nearest_feature(gdf, grid, radius_m, offset=len(texts))
        if gdf is not None and len(gdf):
            texts += [feature_text(name, row) for row in _rows(gdf)]
        ids.append(i)
        dist.append(d)
    return ModalityInputs(
        context=context,
        context_names=tuple(vector_layers),
        text_ids=np.stack(ids).astype(np.int32),
        text_distance=np.stack(dist).astype(np.float32),
        text_layers=tuple(text_layers),
        texts=tuple(texts),
    )


def feature_text(layer: str, tags: Mapping[str, Any]) -> str:
    """``"<layer> key=value ..."`` of a feature's non-empty tags (identifiers, dates and truth codes left out)."""
    parts = [layer]
    for key, value in tags.items():
        if key in _SKIP_COLUMNS or value is None or (isinstance(value, float) and value != value):
            continue
        text = str(value).strip()
        if text:
            parts.append(f"{key}={text}")
    return " ".join(parts)


def byte_ngrams(text: str, *, n_buckets: int = N_BUCKETS, max_grams: int = MAX_GRAMS) -> list[int]:
    """Hash buckets (1..n_buckets-1) of the byte 1-, 2- and 3-grams of ``text``, lowercased, at most ``max_grams``.

    The text is framed by ``\\x02``/``\\x03`` so word starts and ends have n-grams of their own.
    """
    data = b"\x02" + text.lower().encode("utf-8") + b"\x03"
    out: list[int] = []
    for n in (1, 2, 3):
        for i in range(len(data) - n + 1):
            out.append(zlib.crc32(data[i : i + n], n) % (n_buckets - 1) + 1)
    return out[:max_grams] if len(out) > max_grams else out


def gram_matrix(texts: Sequence[str], *, n_buckets: int = N_BUCKETS, max_grams: int = MAX_GRAMS) -> np.ndarray:
    """int64 ``(len(texts), G)`` of :func:`byte_ngrams` per text, padded with 0; G >= 1."""
    grams = [byte_ngrams(t, n_buckets=n_buckets, max_grams=max_grams) for t in texts]
    width = max([len(g) for g in grams] + [1])
    out = np.zeros((len(grams), width), dtype=np.int64)
    for i, g in enumerate(grams):
        out[i, : len(g)] = g
    return out


# -- helpers -------------------------------------------------------------------


def _rows(gdf: Any) -> list[dict[str, Any]]:
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    values = {c: gdf[c].tolist() for c in cols}
    return [{c: values[c][i] for c in cols} for i in range(len(gdf))]


def _coverage(gdf: Any, grid: TileGrid) -> np.ndarray:
    """0/1 coverage of a layer; lines and points burn every pixel they touch."""
    if gdf is None or not len(gdf):
        return np.zeros(grid.shape, np.float32)
    from rasterio.features import rasterize

    polygons = [g for g in gdf.geometry if g is not None and g.geom_type in ("Polygon", "MultiPolygon")]
    others = [g for g in gdf.geometry if g is not None and g.geom_type not in ("Polygon", "MultiPolygon")]
    out = np.zeros(grid.shape, np.uint8)
    if polygons:
        out |= rasterize([(g, 1) for g in polygons], out_shape=grid.shape, transform=grid.transform, dtype="uint8")
    if others:
        out |= rasterize(
            [(g, 1) for g in others], out_shape=grid.shape, transform=grid.transform, dtype="uint8", all_touched=True
        )
    return out.astype(np.float32)


def _nearest_feature(gdf: Any, grid: TileGrid, radius_m: float, *, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, ``offset`` + index of the nearest feature of ``gdf`` within ``radius_m`` (-1 beyond), and metres."""
    if gdf is None or not len(gdf):
        return np.full(grid.shape, -1, np.int32), np.full(grid.shape, radius_m, np.float32)
    from rasterio.features import rasterize
    from scipy.ndimage import distance_transform_edt

    shapes = [(g, i + 1) for i, g in enumerate(gdf.geometry) if g is not None and not g.is_empty]
    burned = rasterize(shapes, out_shape=grid.shape, transform=grid.transform, dtype="int32", all_touched=True)
    if not burned.any():
        return np.full(grid.shape, -1, np.int32), np.full(grid.shape, radius_m, np.float32)
    distance, (rows, cols) = distance_transform_edt(burned == 0, return_indices=True)
    metres = (distance * grid.resolution).astype(np.float32)
    ids = burned[rows, cols].astype(np.int32) - 1 + offset
    far = metres > radius_m
    ids[far] = -1
    metres[far] = radius_m
    return ids, np.minimum(metres, radius_m)
