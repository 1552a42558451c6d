"""A tiny sample world, generated once for the tests of ``memories.sample``."""

from __future__ import annotations

from pathlib import Path

import pytest

from memories.sample import SampleWorld, SampleWorldSpec, generate_world

TINY_SPEC = SampleWorldSpec(seed=42, n_tiles=2, start_month="2023-05", n_months=3, size_px=96, revisit_days=5)
"""2 tiles x 3 months x 96 px: 38 scenes, generated in a few seconds."""


@pytest.fixture(scope="session")
def tiny_spec() -> SampleWorldSpec:
    return TINY_SPEC


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> SampleWorld:
    root: Path = tmp_path_factory.mktemp("tiny_world")
    return generate_world(TINY_SPEC, root)
