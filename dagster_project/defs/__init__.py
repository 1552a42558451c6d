"""The code location's definitions, one module per kind, loaded by ``dg`` (``load_from_defs_folder``).

Each module here holds one ``Definitions`` object, merged into the code location by
``dagster_project/definitions.py``:

| module | registers |
| --- | --- |
| ``assets.py`` | the asset modules of ``assets/`` (their assets and asset checks): add a new asset module there |
| ``jobs.py`` | the jobs (asset selections) |
| ``schedules.py`` | the monthly schedule |
| ``sensors.py`` | the new-scenes sensor and the automation-condition sensor |
| ``resources.py`` | the resources and the executor |

``dg scaffold defs dagster.asset NAME.py`` adds a module here; the loader picks it up with no other change.
"""
