"""JSON of the library's values: the one encoder every module writes JSON with.

What becomes what (:func:`json_default`, the ``default=`` hook of :func:`json.dumps`):

- numpy scalars: the Python number or bool they hold; numpy arrays: nested lists;
- ``datetime`` and ``date``: ISO 8601 (``datetime.isoformat``; an aware datetime keeps its offset);
- ``pathlib`` paths: their string;
- dataclass instances: a dict of their fields (``dataclasses.asdict``);
- sets: a list sorted by ``str``, so the same set always writes the same text;
- other values with a ``tolist()`` (torch tensors, pandas series): that list;
- anything else: ``TypeError`` from :func:`json_default`; its string from
  :func:`json_default_or_str` (for cache keys, sidecars and attributes where any value
  must go through).

NaN and infinities are the caller's choice, stated at the call (:func:`dumps`'s ``nan``):
``"null"`` writes them as ``null`` (strict JSON for HTTP answers), ``"raise"`` refuses
them (``ValueError``: model sidecars, which must round-trip), ``"literal"`` writes Python's
``NaN`` / ``Infinity`` (the default of :func:`json.dumps`, read back by :func:`json.loads`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Literal

import numpy as np

__all__ = ["NanPolicy", "dumps", "finite", "json_default", "json_default_or_str"]

NanPolicy = Literal["null", "raise", "literal"]
"""How NaN and infinities are written: as ``null``, refused (``ValueError``), or as ``NaN`` / ``Infinity``."""


def json_default(o: Any) -> Any:
    """The JSON value of a value :func:`json.dumps` cannot write itself (see the module table).

    Raises:
        TypeError: a value of no kind in the table (naming its type).
    """
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, PurePath):
        return str(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, set | frozenset):
        return sorted(o, key=str)
    if callable(getattr(o, "tolist", None)):  # torch tensors, pandas series: their values as lists
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def json_default_or_str(o: Any) -> Any:
    """:func:`json_default`, and the string of any other value."""
    try:
        return json_default(o)
    except TypeError:
        return str(o)


def finite(o: Any) -> Any:
    """``o`` with every NaN and infinity (Python or numpy floats, in dicts, lists, tuples, arrays) as ``None``."""
    if isinstance(o, float | np.floating):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return finite(o.tolist())
    return o


def dumps(obj: Any, *, nan: NanPolicy, lenient: bool = False, **kwargs: Any) -> str:
    """``json.dumps`` of ``obj`` with the library's encoder and a stated NaN policy.

    Args:
        obj: the value.
        nan: how NaN and infinities are written (:data:`NanPolicy`).
        lenient: write the string of a value the table does not know instead of raising ``TypeError``.
        kwargs: more arguments of :func:`json.dumps` (``indent``, ``sort_keys``).
    """
    default = json_default_or_str if lenient else json_default
    if nan == "null":
        return json.dumps(finite(obj), default=default, allow_nan=False, **kwargs)
    return json.dumps(obj, default=default, allow_nan=nan == "literal", **kwargs)
