"""A Dagster run in its own process, for the durability tests: ``python _dagster_run_child.py SPEC_JSON``.

Materializes ``stac_items`` and ``surface_reflectance`` of one tile-month through
the code location's real ``ingest_job`` (``execute_in_process`` on the persistent
instance in ``DAGSTER_HOME``), with the storage root, memory catalog and scene
cloud filter the spec names. The test configuration (``MEMORIES_CONFIG``, the
sample world) comes from the inherited environment.

With ``"pause_marker"`` in the spec, the run pauses mid-write so the test can kill
it: :func:`memories.store.slice_write._write_block` is wrapped (here, not in the
library) to create the marker file after the first block of the variable
``pause_after`` (default ``reflectance``: float blocks, too large for Icechunk to
inline in its manifest, so they are chunk files in the store) is written into the
store's session, then to sleep; the test waits for the marker and sends SIGKILL.

SPEC_JSON keys: ``run_id``, ``month`` (``YYYY-MM``), ``tile``, ``root`` (storage
URI), ``catalog`` (SQLite path), ``max_cloud_cover`` (percent), optional
``pause_marker`` (file path), ``pause_after`` (variable name).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

PAUSE_S = 600.0
"""How long the paused writer sleeps (seconds): far longer than the test waits before it kills."""


def pause_after_first_block(marker: Path, variable: str = "reflectance") -> None:
    """Wrap the store's block writer: after the first block of ``variable`` is written, touch ``marker``, sleep."""
    import memories.store.slice_write as slice_write

    original = slice_write._write_block

    def write_then_pause(fork: Any, path: str, sel: tuple[Any, ...], block: Any) -> Any:
        out = original(fork, path, sel, block)
        if path != variable:
            return out
        try:
            # O_EXCL: exactly one writer thread signals, whatever the dask scheduler runs in parallel.
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return out
        os.write(fd, f"{path} {sel}".encode())
        os.close(fd)
        time.sleep(PAUSE_S)  # the test kills the process group here, mid-write
        return out

    slice_write._write_block = write_then_pause


def main(spec: dict[str, Any]) -> int:
    """Run the job for the spec's tile-month; 0 when the run succeeded."""
    if spec.get("pause_marker"):
        pause_after_first_block(Path(spec["pause_marker"]), spec.get("pause_after") or "reflectance")
    from dagster import AssetKey, DagsterInstance

    from assets.partitions import partition_key
    from dagster_project.definitions import defs

    run_config = {
        "resources": {
            "storage": {"config": {"root": spec["root"]}},
            "memory": {"config": {"path": spec["catalog"]}},
            "stac": {"config": {"max_cloud_cover": float(spec["max_cloud_cover"])}},
        }
    }
    result = defs.resolve_job_def("ingest_job").execute_in_process(
        run_config=run_config,
        instance=DagsterInstance.get(),
        partition_key=partition_key(spec["month"], spec["tile"]),
        asset_selection=[AssetKey("stac_items"), AssetKey("surface_reflectance")],
        run_id=spec["run_id"],
        raise_on_error=False,
    )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
