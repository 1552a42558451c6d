"""Worker process of ``generate_world``: renders and writes a share of the scenes.

Run as ``python -m memories.sample._worker TASK.json ITEMS.json``; the task names
the spec, the root and the ``(tile_id, index)`` scenes to render; the items of
those scenes are written to ``ITEMS.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from memories.sample.generate import render_chunk
from memories.sample.spec import SampleWorldSpec


def main(argv: list[str]) -> int:
    """Render the task in ``argv[0]``, write its items to ``argv[1]``."""
    task_path, items_path = map(Path, argv)
    task = json.loads(task_path.read_text())
    spec = SampleWorldSpec.from_dict(task["spec"])
    jobs = [(str(tile_id), int(index)) for tile_id, index in task["jobs"]]
    items = render_chunk(spec, Path(task["root"]), jobs)
    items_path.write_text(json.dumps(items))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
