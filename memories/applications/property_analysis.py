"""What :meth:`RealEstateAgent.analyze_property` answers: one typed value, with the seed's attribute names.

``analysis.timeline``, ``analysis.environmental_factors``, ``analysis.neighborhood_changes`` and
``analysis.future_projections`` are the seed's names; :meth:`PropertyAnalysis.to_dict` is the
JSON document the server's ``/v1/property`` answers (keys ``timeline``, ``environmental``,
``neighborhood``, ``projections``, ...; every number a
:func:`~memories.applications.report.quantity` with its unit).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PropertyAnalysis"]


@dataclass(frozen=True)
class PropertyAnalysis:
    """A property's surroundings over a period, read from the memory (see :mod:`memories.applications.real_estate`)."""

    address: str
    """The address asked for."""
    property: Any
    """The :class:`~memories.applications.real_estate.Property` it resolved to (tile, point, match score)."""
    radius_m: float
    """Radius of the surroundings, metres."""
    period: str
    """``YYYY-MM..YYYY-MM``, the months analysed."""
    months: list[str]
    """Every month of the period the memory holds."""
    as_of: str | None
    """Transaction time of the memory view (ISO 8601), None: now."""
    definitions: dict[str, str]
    """What each number means (circle, shares, green space...)."""
    timeline: list[dict[str, Any]]
    """Per month: land-cover shares in the circle (0–1), built-up, green space, water, mean NDVI."""
    environmental_factors: dict[str, Any] | None
    """Flood exposure, vegetation trend, climate; None when not asked for."""
    neighborhood_changes: dict[str, Any] | None
    """Buildings, roads and land-cover transitions between the first and last month; None when not asked for."""
    future_projections: dict[str, Any]
    """ARIMA projection of the circle's monthly NDVI with its intervals (or why none could be fitted)."""
    sources: dict[str, str] = field(default_factory=dict)
    """The catalog records read: what -> asset, months and versions."""
    note: str | None = None
    """Set when the address was ambiguous."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able document of the analysis (the server's ``/v1/property`` answer)."""
        out: dict[str, Any] = {
            "address": self.address,
            "property": asdict(self.property),
            "radius_m": self.radius_m,
            "period": self.period,
            "months": self.months,
            "as_of": self.as_of,
            "definitions": self.definitions,
            "timeline": self.timeline,
        }
        if self.note is not None:
            out["note"] = self.note
        if self.environmental_factors is not None:
            out["environmental"] = self.environmental_factors
        if self.neighborhood_changes is not None:
            out["neighborhood"] = self.neighborhood_changes
        out["projections"] = self.future_projections
        out["sources"] = self.sources
        return out
