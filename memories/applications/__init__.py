"""The application layer: analyses that answer questions about places over time.

Each application reads only from the memory (through a
:class:`~memories.memory.view.MemoryView`, so ``as_of`` works for it)
and builds a :class:`~memories.applications.report.Report` of one tile-month:

=================  ==============================================================
kind               application
=================  ==============================================================
``environmental``  :class:`~memories.applications.environmental.EnvironmentalMonitor`
``disaster``       :class:`~memories.applications.disaster.DisasterAnalyzer`
``urban``          :class:`~memories.applications.urban.UrbanPlanner`
``historical``     :class:`~memories.applications.historical.HistoricalReconstructor`
``real_estate``    :class:`~memories.applications.real_estate.RealEstateAgent`
=================  ==============================================================

``application("disaster", view)`` builds one by its kind; every application class
takes the view first (``Cls(view, **options)``) and has ``report(tile, month) -> Report``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from memories.errors import ConfigError

APPLICATIONS: dict[str, str] = {
    "environmental": "memories.applications.environmental:EnvironmentalMonitor",
    "disaster": "memories.applications.disaster:DisasterAnalyzer",
    "urban": "memories.applications.urban:UrbanPlanner",
    "historical": "memories.applications.historical:HistoricalReconstructor",
    "real_estate": "memories.applications.real_estate:RealEstateAgent",
}
"""Report kind -> ``module:Class`` of its application."""


def application_class(kind: str) -> Any:
    """The application class of a report kind.

    Raises:
        ConfigError: no application of that kind.
    """
    try:
        module, _, name = APPLICATIONS[kind].partition(":")
    except KeyError:
        raise ConfigError(f"no application {kind!r}; the applications are {sorted(APPLICATIONS)}") from None
    return getattr(import_module(module), name)


def application(kind: str, view: Any = None, **options: Any) -> Any:
    """An application of ``kind`` reading ``view`` (default: the configured memory, now)."""
    from memories.memory.view import MemoryView

    return application_class(kind)(view or MemoryView(), **options)
