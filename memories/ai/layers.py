"""Building blocks shared by the U-Net models of :mod:`memories.ai`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from memories.errors import ConfigError

__all__ = ["conv_block", "float_list"]


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by batch norm and ReLU (the U-Net's level)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def float_list(values: Sequence[float] | None, n: int, default: float, name: str) -> list[float]:
    """``values`` as n floats (``default`` repeated when None); a clear error when the count is wrong."""
    if values is None:
        return [default] * n
    out = [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
    if len(out) != n:
        raise ConfigError(f"{name} has {len(out)} values; give one per channel ({n})")
    return out
