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
takes the view first (``Cls(view, **options)``; none: the configured memory, now) and has
``report(tile, month) -> Report``, and ``await app.areport(tile, month)`` as its coroutine twin
(:mod:`memories.applications.awaitable`). The classes are importable from here, as the seed
writes them (``from memories.applications import RealEstateAgent``), loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from memories._lazy import lazy_exports
from memories.errors import ConfigError

APPLICATIONS: dict[str, str] = {
    "environmental": "memories.applications.environmental:EnvironmentalMonitor",
    "disaster": "memories.applications.disaster:DisasterAnalyzer",
    "urban": "memories.applications.urban:UrbanPlanner",
    "historical": "memories.applications.historical:HistoricalReconstructor",
    "real_estate": "memories.applications.real_estate:RealEstateAgent",
}
"""Report kind -> ``module:Class`` of its application."""

_EXPORTS = {
    "EnvironmentalMonitor": "memories.applications.environmental",
    "DisasterAnalyzer": "memories.applications.disaster",
    "UrbanPlanner": "memories.applications.urban",
    "HistoricalReconstructor": "memories.applications.historical",
    "RealEstateAgent": "memories.applications.real_estate",
    "PropertyAnalysis": "memories.applications.property_analysis",
}
__all__ = ["APPLICATIONS", "application", "application_class", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


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
