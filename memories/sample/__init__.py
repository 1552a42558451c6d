"""The embedded sample world: a deterministic synthetic Sentinel-2 L2A world.

It imitates what Earth Search v1 publishes (single-band COGs with ``raster:bands``
scale and offset, SCL with clouds and shadows, STAC items and collection), comes
with OpenStreetMap-like GIS layers, and carries ground truth (land cover through
scripted events, clear-sky reflectance), so the pipeline runs with no internet
and tests measure accuracy, not just shapes::

    from memories.sample import SampleWorld, SampleWorldSpec, StacServer

    world = SampleWorld.ensure(SampleWorldSpec(n_months=3, size_px=128), "/tmp/world")
    with StacServer(world) as server:
        print(server.url)  # a STAC API on 127.0.0.1
"""

from memories.sample.server import StacServer
from memories.sample.spec import Event, SampleWorldSpec
from memories.sample.spectra import BANDS
from memories.sample.world import SampleWorld, generate_world

__all__ = ["BANDS", "Event", "SampleWorld", "SampleWorldSpec", "StacServer", "generate_world"]
