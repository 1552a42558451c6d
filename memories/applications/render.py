"""Rendering of the application pages: the Jinja2 templates of ``memories/applications/templates`` and the one
display form of a quantity (:func:`fmt`).

The one home of the page templates, shared by the reports (:mod:`memories.applications.report`, which
re-exports both names) and the report index (:mod:`memories.applications.report_index`); it imports
neither, so neither needs the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TEMPLATES", "fmt", "render_html"]

TEMPLATES = Path(__file__).parent / "templates"
"""The folder of the page templates."""


def fmt(q: dict[str, Any] | None) -> str:
    """``12.30 ± 0.40 ha (2024-07)``; ``n/a`` when the value is missing."""
    if not q or q.get("value") is None:
        return "n/a"
    d = int(q.get("digits", 3))
    v = q["value"]
    text = f"{v:.{d}f}" if isinstance(v, float) else str(v)
    if q.get("uncertainty") is not None:
        text += f" ± {q['uncertainty']:.{d}f}"
    unit = q.get("unit") or ""
    if unit and unit not in ("1", "-", "dimensionless"):
        text += f" {unit}" if unit != "%" else " %"
    if q.get("period"):
        text += f" ({q['period']})"
    return text


def render_html(template: str, **context: Any) -> str:
    """Render one of the Jinja2 templates of ``memories/applications/templates`` (autoescaped)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    env.filters["q"] = fmt
    return env.get_template(template).render(**context)
