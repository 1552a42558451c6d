"""The code location: every ``Definitions`` of ``dagster_project/defs/`` merged (``dg``'s defs folder).

Assets, checks, jobs, schedules, sensors (new scenes, automation), resources and the executor are
registered in the modules of ``dagster_project/defs/`` (see its ``__init__``); this module only loads
them, so ``dagster_project.definitions:defs`` stays the target of ``workspace.yaml``, ``dg`` and the
deployments.
"""

from __future__ import annotations

from pathlib import Path

from dagster import load_from_defs_folder

defs = load_from_defs_folder(path_within_project=Path(__file__).parent)
