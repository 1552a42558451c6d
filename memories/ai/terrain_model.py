"""The terrain analysis as a registered, versioned model of the seed's "geospatial models".

Terrain analysis (``memories.earth.terrain``) is deterministic raster math, not a trained network, so it
lives with the other DEM code in ``memories.earth``; what makes it a model of the registry is its
settings (DEM conditioning, stream threshold, epsilon) and its scores. ``TerrainAnalyzer`` holds the
settings the way ``TrendAnalyzer`` does (no weights), :func:`register_terrain_model` stores a version
when the settings or the scores change, and :func:`score_against_truth` measures a terrain product
against an analytic truth (the sample world's ``SampleTerrain``): the metrics of the version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from memories.earth.terrain import FILL_EPSILON_M, Conditioning

TERRAIN_MODEL = "terrain"
"""The registry name of the terrain analysis."""


class TerrainAnalyzer:
    """Settings of the terrain analysis (a registry model without weights).

    Args:
        condition: ``fill`` (Priority-Flood+epsilon) or ``none``.
        stream_area_m2: upstream area (m2) from which a cell is a stream for HAND.
        epsilon_m: gradient (metres per cell) filled flats get.
    """

    def __init__(
        self, condition: Conditioning = "fill", stream_area_m2: float = 1e6, epsilon_m: float = FILL_EPSILON_M
    ) -> None:
        self.hparams: dict[str, Any] = {
            "condition": str(condition),
            "stream_area_m2": float(stream_area_m2),
            "epsilon_m": float(epsilon_m),
            "slope": "horn",
            "flow": "d8 (esri codes, ties N first)",
        }

    def state_dict(self) -> dict[str, Any]:
        """No weights: an empty state."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to load."""

    def to(self, device: Any) -> TerrainAnalyzer:
        """Runs on the CPU (Dask) whatever the device."""
        return self

    def eval(self) -> TerrainAnalyzer:
        """Always ready."""
        return self


def score_against_truth(ds: Any, truth: Any) -> dict[str, float]:
    """Scores of a terrain product ``ds`` against an analytic terrain ``truth`` (``SampleTerrain``):
    D8 agreement (share of cells), exact flow accumulation (share of cells), slope and aspect errors
    (degrees: max off the valley floor, i.e. 2+ cells from its axis, and overall)."""
    fdir = np.asarray(ds["flow_direction"].values)
    acc = np.asarray(ds["flow_accumulation"].values, dtype=np.float64)
    slope_err = np.abs(np.asarray(ds["slope"].values, dtype=np.float64) - truth.slope_deg())
    aspect = np.asarray(ds["aspect"].values, dtype=np.float64)
    aspect_err = np.abs((aspect - truth.aspect_deg() + 180.0) % 360.0 - 180.0)
    h, w = truth.grid.shape
    flank = np.abs(np.arange(w) - truth.axis_col)[None, :].repeat(h, axis=0) >= 2
    return {
        "d8_agreement": float((fdir == truth.flow_direction()).mean()),
        "accumulation_exact_share": float((acc == truth.flow_accumulation()).mean()),
        "slope_max_error_flank_deg": float(slope_err[flank].max()),
        "slope_max_error_deg": float(slope_err.max()),
        "aspect_max_error_flank_deg": float(aspect_err[flank].max()),
    }


def register_terrain_model(registry: Any, analyzer: TerrainAnalyzer, metrics: Mapping[str, float]) -> Any:
    """The registry version of these settings and scores: the latest if it has both, else a new version."""
    latest = registry.latest(TERRAIN_MODEL)
    scores = {k: float(v) for k, v in metrics.items()}
    if latest is not None and latest.training_data.get("settings") == analyzer.hparams and latest.metrics == scores:
        return latest
    return registry.register(
        TERRAIN_MODEL,
        analyzer,
        scores,
        training_data={"settings": analyzer.hparams, "scored_on": "the sample world's analytic terrain"},
    )
