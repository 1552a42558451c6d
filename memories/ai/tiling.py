"""Inference over scenes of any size: overlapping tiles, batched, uploaded as stored and scaled on the device.

Every model of :mod:`memories.ai` predicts through :func:`tiled_inference`, so the
tiling (context margins, padding to a multiple of 8), the upload of integer DN and
the CUDA policy (pinned memory, bf16 autocast, channels-last) live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from memories.ai.split import DOWNSAMPLING
from memories.errors import ConfigError, ProcessingError

__all__ = [
    "TILE_MARGIN_PX",
    "RowStrips",
    "Tile",
    "check_input",
    "dn_scaling",
    "iter_tiled_inference",
    "tiled_inference",
    "upload_reflectance",
]

TILE_MARGIN_PX = 32
"""Context, in pixels, that :func:`predict_land_cover` reads around each tile and discards."""


def tiled_inference(
    model: nn.Module,
    fn: Callable[[Tensor], Tensor],
    image: np.ndarray,
    *,
    n_out: int,
    batch_px: int = 512,
    scale: float | Sequence[float] | None = None,
    offset: float | Sequence[float] | None = None,
    nodata: int = 0,
    tiles_per_batch: int = 8,
    channels_last: bool | None = None,
) -> np.ndarray:
    """Run ``fn`` over a scene of any size in batches of overlapping tiles; float32 ``(n_out, H, W)``.

    The scene is cut into cores of at most ``batch_px - 2 * TILE_MARGIN_PX`` pixels
    (the whole scene when it fits in ``batch_px``), each read with a context margin
    of :data:`TILE_MARGIN_PX` and padded with no data to one window size (a
    multiple of 8), so tiles batch. On CUDA the batch is uploaded from pinned
    host memory without blocking, *as stored* (uint16 DN travel at half the bytes
    of float32) and scaled to reflectance on the device; the model runs under
    ``torch.autocast(dtype=torch.bfloat16)`` in channels-last memory format.

    Args:
        model: The module ``fn`` calls; its device and mode are used (eval mode inside).
        fn: Maps reflectance ``(B, C, h, w)`` float32 with NaN for no data to ``(B, n_out, h, w)``.
        image: ``(C, H, W)`` float reflectance with NaN, or integer DN with ``scale``/``offset``.
        n_out: Channels ``fn`` returns.
        batch_px: Window side, pixels (at least ``2 * TILE_MARGIN_PX + 8``).
        scale: Reflectance per DN of integer input (scalar or per band); ``1e-4`` if None.
        offset: Added after scaling (scalar or per band); 0 if None.
        nodata: DN of no data in integer input; such pixels become NaN.
        tiles_per_batch: Tiles per call of ``fn``.
        channels_last: Use channels-last memory format; None: on CUDA only.
    """
    x = np.asarray(image)
    out = np.full((n_out, *x.shape[1:]), np.nan, dtype=np.float32)

    for r0, r1, c0, c1, block in iter_tiled_inference(
        model,
        fn,
        x,
        n_out=n_out,
        batch_px=batch_px,
        scale=scale,
        offset=offset,
        nodata=nodata,
        tiles_per_batch=tiles_per_batch,
        channels_last=channels_last,
    ):
        out[:, r0:r1, c0:c1] = block
    return out


Tile = tuple[int, int, int, int, np.ndarray]
"""``(r0, r1, c0, c1, block)``: float32 ``(n_out, r1 - r0, c1 - c0)``, the output over one tile's core."""


def iter_tiled_inference(
    model: nn.Module,
    fn: Callable[[Tensor], Tensor],
    image: Any,
    *,
    n_out: int,
    batch_px: int = 512,
    scale: float | Sequence[float] | None = None,
    offset: float | Sequence[float] | None = None,
    nodata: int = 0,
    tiles_per_batch: int = 8,
    channels_last: bool | None = None,
) -> Generator[Tile, None, None]:
    """:func:`tiled_inference` tile by tile: yields each tile core's output instead of filling a scene-sized array.

    ``image`` is a numpy array or any ``(C, H, W)`` source with ``shape``, ``dtype`` and numpy slicing
    (``image[:, r0:r1, c0:c1]``), such as :class:`RowStrips` over a lazy store: the scene is never whole in
    memory. :func:`tiled_inference` collects this, so both give the same values. The cores come row of
    tiles by row of tiles, left to right; the model is in eval mode until the iterator ends (or is closed),
    and inference and autocast mode are on only while a batch runs, not while the caller holds a tile.
    """
    if batch_px < 2 * TILE_MARGIN_PX + DOWNSAMPLING:
        raise ConfigError(f"batch_px={batch_px} is too small; use at least {2 * TILE_MARGIN_PX + DOWNSAMPLING}")
    if tiles_per_batch < 1:
        raise ConfigError(f"tiles_per_batch={tiles_per_batch}; use 1 or more")
    x = image
    integer = np.issubdtype(x.dtype, np.integer)
    dtype = np.dtype(x.dtype) if integer else np.dtype(np.float32)
    n_bands, rows, cols = x.shape
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    use_cl = cuda if channels_last is None else channels_last
    scale_t, offset_t = dn_scaling(scale, offset, n_bands, device)
    win_r = _round_up(min(batch_px, rows), DOWNSAMPLING) if rows <= batch_px else _round_up(batch_px, DOWNSAMPLING)
    win_c = _round_up(min(batch_px, cols), DOWNSAMPLING) if cols <= batch_px else _round_up(batch_px, DOWNSAMPLING)
    fill = nodata if integer else np.nan
    windows = []
    for r0, r1 in _spans(rows, batch_px):
        for c0, c1 in _spans(cols, batch_px):
            wr0 = max(r0 - TILE_MARGIN_PX, 0) if rows > batch_px else 0
            wc0 = max(c0 - TILE_MARGIN_PX, 0) if cols > batch_px else 0
            windows.append((r0, r1, c0, c1, wr0, min(wr0 + win_r, rows), wc0, min(wc0 + win_c, cols)))
    was_training = model.training
    model.eval()
    if use_cl:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    try:
        for b0 in range(0, len(windows), tiles_per_batch):
            group = windows[b0 : b0 + tiles_per_batch]
            host = np.full((len(group), n_bands, win_r, win_c), fill, dtype=dtype)
            for k, (_, _, _, _, wr0, wr1, wc0, wc1) in enumerate(group):
                host[k, :, : wr1 - wr0, : wc1 - wc0] = x[:, wr0:wr1, wc0:wc1]
            with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=cuda):
                batch = upload_reflectance(host, device, scale=scale_t, offset=offset_t, nodata=nodata)
                if use_cl:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                result = fn(batch).float().cpu().numpy()
            for k, (r0, r1, c0, c1, wr0, _, wc0, _) in enumerate(group):
                yield r0, r1, c0, c1, result[k, :, r0 - wr0 : r1 - wr0, c0 - wc0 : c1 - wc0]
    finally:
        if use_cl:
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        model.train(was_training)


class RowStrips:
    """A lazy ``(C, H, W)`` image (an xarray ``DataArray`` or dask array) read one strip of rows at a time.

    `iter_tiled_inference` asks for the tiles of one row of tiles in turn, each with the same rows:
    the first asks the source for those rows across the whole width, the others are cut from it. The two
    latest strips are kept (a batch may span two rows of tiles), so memory holds about two strips of the
    image, not the image. Values are read as ``dtype``: by default integers as stored (DN), floats as float32.
    """

    def __init__(self, source: Any, *, dtype: Any = None, keep: int = 2) -> None:
        self.source = source
        self.shape = tuple(int(n) for n in source.shape)
        if len(self.shape) != 3:
            raise ProcessingError(f"an image of shape {self.shape}; tiles need (C, H, W)")
        stored = np.dtype(source.dtype)
        default = stored if np.issubdtype(stored, np.integer) else np.dtype(np.float32)
        self.dtype = default if dtype is None else np.dtype(dtype)
        self.keep = keep
        self._strips: dict[tuple[int, int], np.ndarray] = {}

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        bands, rows, cols = key
        span = (rows.start or 0, self.shape[1] if rows.stop is None else rows.stop)
        strip = self._strips.get(span)
        if strip is None:
            strip = self.rows(*span)
            self._strips[span] = strip
            while len(self._strips) > self.keep:
                del self._strips[next(iter(self._strips))]
        return strip[bands, :, cols]

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """Rows ``[r0, r1)`` of every band, across the whole width, read now."""
        part = self.source[:, r0:r1, :]
        values = part.values if hasattr(part, "values") else np.asarray(part)
        return np.asarray(values, dtype=self.dtype)


def upload_reflectance(
    host: np.ndarray,
    device: torch.device,
    *,
    scale: Tensor | None = None,
    offset: Tensor | None = None,
    nodata: int = 0,
) -> Tensor:
    """A batch ``(B, C, h, w)`` as float32 reflectance on ``device``, NaN for no data.

    Integer DN are sent as they are (pinned host memory and a non-blocking copy on
    CUDA) and turned into reflectance on the device: ``DN * scale + offset``, NaN
    where ``DN == nodata``. ``scale`` and ``offset`` are ``(1, C, 1, 1)`` tensors on
    ``device`` (:func:`dn_scaling`); float input is uploaded as float32.
    """
    a = np.ascontiguousarray(host)
    t = torch.from_numpy(a)
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    else:
        t = t.to(device)
    if not torch.is_floating_point(t):
        missing = t == nodata
        refl = t.float()
        if scale is not None:
            refl = refl * scale
        if offset is not None:
            refl = refl + offset
        return refl.masked_fill(missing, float("nan"))
    return t.float()


def check_input(model: nn.Module, reflectance: Any) -> None:
    """Raise a clear error unless ``reflectance`` (array or lazy source) is ``(C, H, W)`` with the model's C bands."""
    c = int(model.hparams["in_channels"])  # type: ignore[index]
    shape = tuple(reflectance.shape) if hasattr(reflectance, "shape") else np.shape(reflectance)
    if len(shape) != 3 or shape[0] != c:
        raise ProcessingError(
            f"reflectance of shape {shape}: the model wants ({c}, H, W) with bands "
            f"{model.hparams.get('band_names')}; stack the bands first"  # type: ignore[union-attr, operator]
        )


def dn_scaling(
    scale: float | Sequence[float] | None, offset: float | Sequence[float] | None, n_bands: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """(1, C, 1, 1) scale and offset tensors on ``device`` (scale 1e-4 and offset 0 by default)."""
    s = np.broadcast_to(np.asarray(1e-4 if scale is None else scale, dtype=np.float32).ravel(), (n_bands,))
    o = np.broadcast_to(np.asarray(0.0 if offset is None else offset, dtype=np.float32).ravel(), (n_bands,))
    return (
        torch.tensor(s.copy(), device=device).view(1, -1, 1, 1),
        torch.tensor(o.copy(), device=device).view(1, -1, 1, 1),
    )


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _spans(n: int, batch_px: int) -> list[tuple[int, int]]:
    """Core spans along one axis: the whole axis if it fits a tile, else cores that leave room for margins."""
    if n <= batch_px:
        return [(0, n)]
    core = batch_px - 2 * TILE_MARGIN_PX
    return [(i, min(i + core, n)) for i in range(0, n, core)]
