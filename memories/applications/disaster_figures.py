"""The disaster report's figures: before / during / after maps, the recovery curve, affected buildings by type,
and the page's interactive map, all drawn from a :class:`~memories.applications.disaster_analysis.DisasterAnalysis`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memories.applications.common import span
from memories.applications.disaster_analysis import DisasterAnalysis, EventLayers
from memories.applications.maps import class_overlay, draw_map, map_legend
from memories.applications.report import png, pyplot
from memories.applications.webmap import WebMap

COLOURS = {1: "#2e86de", 2: "#e74c3c", 3: "#f39c12"}
"""Map classes: 1 baseline, 2 visible in the median, 3 part of the month."""
STILL_COLOUR = "#8e44ad"


def recovery_series(a: DisasterAnalysis) -> tuple[list[str], list[float], list[float]]:
    """(months, area ha, uncertainty ha) from the event month to the last month read."""
    assert a.during is not None and a.event_month is not None, "no event: no recovery"
    months = [a.event_month, *(x.month for x in a.after)]
    area = [a.during.area_ha, *(x.still_ha for x in a.after)]
    unc = [a.during.area_uncertainty_ha, *(x.still_uncertainty_ha for x in a.after)]
    return months, area, unc


def maps_figure(a: DisasterAnalysis, month: str) -> bytes:
    """The before / during / after maps over each month's true-colour composite, the affected buildings and
    roads on top."""
    plt = pyplot()
    m = a.masks
    last = a.after[-1].month if a.after else a.event_month
    panels = [
        (f"before: baseline {span(a.baseline_months)}", a.bases.before, None),
        (f"during: {a.event_month}", a.bases.during, (m.visible, m.footprint & ~m.visible)),
        (f"after: still in {last}", a.bases.after, (m.last, np.zeros_like(m.last))),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.9), dpi=90)
    for ax, (title, bm, hit) in zip(axes, panels, strict=True):
        img = np.zeros(a.grid.shape, dtype=np.uint8)
        img[m.baseline] = 1
        if hit is not None:
            img[hit[1]] = 3
            img[hit[0]] = 2
        draw_map(ax, bm, overlays=[class_overlay(img, COLOURS, 0.65)], title=f"{title} · composite {bm.month or 'n/a'}")
        if a.event_layers is not None and hit is not None:
            _draw_affected(ax, a.event_layers)
    map_legend(axes[2], _legend_handles(a), outside=True)
    fig.suptitle(f"tile {a.tile}, report {month}")
    return png(fig)


def event_webmap(a: DisasterAnalysis) -> WebMap:
    """The page's interactive map of an event: the event month's composite, the baseline, the footprint, what
    is still hit, and the buildings and roads of the event month."""
    label = "flood" if a.hazard == "flood" else "burn"
    m = a.masks
    last = a.after[-1].month if a.after else a.event_month
    web = WebMap(a.grid)
    web.add_raster("composite", a.bases.during.label, a.bases.during.rgba)
    web.add_raster("baseline", _baseline_label(a), class_overlay(m.baseline.astype(np.uint8), {1: COLOURS[1]}, 0.65))
    fp = np.zeros(a.grid.shape, dtype=np.uint8)
    fp[m.footprint & ~m.visible] = 3
    fp[m.visible] = 2
    web.add_raster("footprint", f"{label} {a.event_month}", class_overlay(fp, COLOURS, 0.65))
    web.add_raster(
        "still",
        f"still {'under water' if label == 'flood' else 'burned'} in {last}",
        class_overlay(m.last.astype(np.uint8), {1: STILL_COLOUR}, 0.6),
        visible=False,
    )
    if a.event_layers is not None:
        _add_event_layers(web, a.event_layers, a.event_month, _roads_label(a))
    return web


def no_event_webmap(a: DisasterAnalysis) -> WebMap:
    """The page's interactive map without event: the last month's composite and the baseline."""
    web = WebMap(a.grid)
    web.add_raster("composite", a.bases.month.label, a.bases.month.rgba)
    web.add_raster(
        "baseline", _baseline_label(a), class_overlay(a.masks.baseline.astype(np.uint8), {1: "#2e86de"}, 0.65)
    )
    return web


def _baseline_label(a: DisasterAnalysis) -> str:
    return "baseline water" if a.hazard == "flood" else "burned before"


def _roads_label(a: DisasterAnalysis) -> str:
    return "roads flooded" if a.hazard == "flood" else "roads burned"


def _legend_handles(a: DisasterAnalysis) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    label = "flood" if a.hazard == "flood" else "burn"
    handles: list[Any] = [
        Patch(color=COLOURS[1], label=_baseline_label(a)),
        Patch(color=COLOURS[2], label=f"{label}, visible in the median"),
        Patch(color=COLOURS[3], label=f"{label}, part of the month"),
    ]
    if a.event_layers is not None:
        handles += [
            Patch(facecolor="#ffea00", edgecolor="black", label="buildings hit"),
            Line2D([], [], color="#ff00ff", lw=2, label=_roads_label(a)),
        ]
    return handles


def _add_event_layers(web: WebMap, gis: EventLayers, month: str | None, roads_label: str) -> None:
    b, hit_b, r, inside = gis.buildings, gis.hit, gis.roads, gis.inside
    web.add_vectors(
        "buildings",
        f"buildings ({month})",
        b.geometry[~hit_b],
        style={"color": "#333", "weight": 1, "fillOpacity": 0.3},
        visible=False,
    )
    web.add_vectors(
        "buildings_hit",
        "buildings hit",
        b.geometry[hit_b],
        style={"color": "#000", "weight": 1, "fillColor": "#ffea00", "fillOpacity": 0.9},
        props=_props(b[hit_b], ["osm_id", "building", "name"]),
    )
    web.add_vectors("roads", f"roads ({month})", r.geometry, style={"color": "#555", "weight": 1.5})
    web.add_vectors("roads_hit", roads_label, inside, style={"color": "#ff00ff", "weight": 3})


def _draw_affected(ax: Any, gis: EventLayers) -> None:
    b, hit, r, inside = gis.buildings, gis.hit, gis.roads, gis.inside
    if len(r):
        r.geometry.plot(ax=ax, color="#bdbdbd", lw=0.7, zorder=3)
    if len(inside):
        inside.plot(ax=ax, color="#ff00ff", lw=1.6, zorder=4)
    if hit.any():
        b.geometry[hit].plot(ax=ax, facecolor="#ffea00", edgecolor="black", lw=0.4, zorder=4)


def _props(frame: Any, columns: list[str]) -> Any:
    """The ``columns`` of ``frame`` that it has, as plain text (the interactive map's popups)."""
    cols = [c for c in columns if c in frame.columns]
    return frame[cols].astype(str).where(frame[cols].notna(), None) if cols else None


def recovery_figure(a: DisasterAnalysis) -> bytes:
    """The area under the hazard per month after the event (ha), ± its uncertainty."""
    plt = pyplot()
    months, area, unc = recovery_series(a)
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=90)
    ax.errorbar(months, area, yerr=unc, marker="o", capsize=3, color="#c0392b")
    ax.set_ylabel("area (ha)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{a.hazard} area after {a.event_month}, tile {a.tile}")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return png(fig)


def buildings_figure(a: DisasterAnalysis) -> bytes:
    """Affected buildings by OSM building type (count)."""
    plt = pyplot()
    by = a.buildings.by_type
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=90)
    if by:
        ax.bar(list(by), list(by.values()), color="#34495e")
    else:
        ax.text(0.5, 0.5, "no building affected", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("buildings (count)")
    ax.set_title(f"affected buildings by type, {a.event_month}")
    return png(fig)
