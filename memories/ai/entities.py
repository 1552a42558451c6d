"""Geospatial entity recognition: addresses and place names in text, resolved to the places the memory knows.

:func:`extract_entities` finds, with rules (no model, no network):

- addresses, European order — street then number (``Mannerheimintie 22-24``,
  ``Unioninkatu 33b``, ``Hauptstr. 5``) — and English order — number, street,
  street type (``123 Main St``, ``10 Downing Street``);
- place names, only when a :class:`Gazetteer` is given: runs of capitalised
  words that match one of its names (not every capitalised word).

:class:`Gazetteer` indexes buildings (``name``, ``addr:street``,
``addr:housenumber``) and named places of GeoDataFrames in any CRS and resolves
text to features with a point in EPSG:4326 and a score 0–1. Matching is on
normalised text: case folded, accents stripped (``ä`` -> ``a``), ``ß`` -> ``ss``,
common abbreviations expanded (St/Ave/Rd/Blvd..., Finnish ``k.``/``t.`` for
``katu``/``tie``, German ``str.``); street names match fuzzily
(:class:`difflib.SequenceMatcher` ratio >= ``min_score``), house numbers exactly,
so an address that is not in the memory resolves to nothing rather than to a
neighbour. An address that several features carry (the same street name in two
towns) resolves to the one nearest a place named in the same text (``Mill Road
1 in Saint-Rémy``), else to the first; ``Match.candidates`` says how many there
were.

:meth:`Gazetteer.from_memory` builds the gazetteer of what the memory knows: the
``buildings`` and ``places`` GeoParquet layers that the ``gis_layers`` asset
wrote for some tiles and one month (a building or place whose ``start_date`` is
after that month is not in them, so it does not resolve).
"""

from __future__ import annotations

import difflib
import re
import string
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from memories.errors import ProcessingError

__all__ = ["Entity", "Gazetteer", "Match", "expand_other_tags", "extract_entities", "normalize"]

STREET_TYPES: dict[str, str] = {
    "st": "street",
    "str": "street",
    "ave": "avenue",
    "av": "avenue",
    "rd": "road",
    "blvd": "boulevard",
    "dr": "drive",
    "ln": "lane",
    "ct": "court",
    "pl": "place",
    "sq": "square",
    "hwy": "highway",
    "pkwy": "parkway",
    "ter": "terrace",
}
"""English street-type abbreviations and their full words."""

_STREET_WORDS = set(STREET_TYPES.values()) | {"way", "row", "close", "crescent", "parade"}
# European street-name endings (Finnish, Swedish, German, Slovenian, Dutch, ...), as suffixes of one word.
_EURO_SUFFIXES = (
    "katu", "tie", "kuja", "polku", "ranta", "tori", "aukio", "puistikko", "penger", "väylä", "vayla", "kaari",
    "gatan", "vägen", "vagen", "gränd", "strasse", "straße", "str.", "gasse", "weg", "platz", "allee", "ring",
    "cesta", "ulica", "straat", "laan", "gracht", "esplanadi", "bulevardi", "k.", "t.",
)  # fmt: skip
_NUMBER = r"\d{1,5}(?:\s?[A-Za-z](?!\w))?(?:\s?[-–]\s?\d{1,5}(?:\s?[A-Za-z](?!\w))?)?"
_WORD = r"[A-ZÀ-ÖØ-Þ][\wÀ-ÿ'.-]*"
_EURO = re.compile(rf"(?P<street>(?:{_WORD}\s){{0,2}}{_WORD})\s(?P<number>{_NUMBER})\b")
_TYPES = "|".join(sorted({k.title() for k in STREET_TYPES} | {w.title() for w in _STREET_WORDS}, key=len, reverse=True))
_ENGLISH = re.compile(rf"\b(?P<number>{_NUMBER})\s(?P<street>(?:{_WORD}\s){{0,3}}(?:{_TYPES})\.?)(?!\w)")


@dataclass(frozen=True)
class Entity:
    """A span of text that names a place or an address."""

    kind: Literal["address", "place"]
    text: str
    start: int
    end: int
    street: str | None = None
    housenumber: str | None = None


@dataclass(frozen=True)
class Match:
    """A gazetteer feature that an entity resolved to."""

    entity: Entity
    feature_id: str
    label: str
    """The feature's name or ``street housenumber``, as in the source data."""
    lon: float
    lat: float
    """A point on the feature, EPSG:4326 degrees."""
    score: float
    """0–1: the street (or name) similarity of normalised text."""
    candidates: int = 1
    """Features that carry this address (or name) equally well; above 1 the text was ambiguous and the
    one nearest a place named in the same text (or, with none, the first) was chosen."""


def normalize(text: str) -> str:
    """Lower-case, accent-free, abbreviation-expanded, single-spaced text for matching."""
    t = text.replace("ß", "ss").replace("–", "-")
    t = unicodedata.normalize("NFKD", t)
    t = "".join(ch for ch in t if not unicodedata.combining(ch)).lower()
    words = []
    for w in re.split(r"\s+", t.strip()):
        bare = w.rstrip(".,;:")
        if bare in STREET_TYPES:
            words.append(STREET_TYPES[bare])
        elif w.endswith("str.") or bare.endswith("str"):
            words.append(bare[: -len("str")] + "strasse")
        elif w.endswith("k.") and len(w) > 3:
            words.append(bare[:-1] + "katu")
        elif w.endswith("t.") and len(w) > 3:
            words.append(bare[:-1] + "tie")
        elif bare:
            words.append(bare)
    return " ".join(words)


def extract_entities(text: str, gazetteer: Gazetteer | None = None) -> list[Entity]:
    """Addresses (and, with a gazetteer, place names) in ``text``, in order of appearance.

    Without a gazetteer, a European-order candidate needs a recognised street
    ending (``-katu``, ``-strasse``, ``-gatan``, ...); with one, any capitalised
    words followed by a number count when the words match one of its streets.
    """
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []

    def add(e: Entity) -> None:
        if any(e.start < b and a < e.end for a, b in taken):
            return
        found.append(e)
        taken.append((e.start, e.end))

    for m in _ENGLISH.finditer(text):
        add(Entity("address", m.group(0), m.start(), m.end(), m["street"].strip(), _clean_number(m["number"])))
    for m in _EURO.finditer(text):
        street = _trim_leading(m["street"], gazetteer)
        if street is None:
            continue
        start = m.start("street") + m["street"].index(street)
        add(Entity("address", text[start : m.end()], start, m.end(), street, _clean_number(m["number"])))
    if gazetteer is not None:
        for m in re.finditer(rf"{_WORD}(?:\s(?:{_WORD}|de|la|von|van|der))*", text):
            for e in gazetteer._place_spans(text, m.start(), m.end()):
                add(e)
    return sorted(found, key=lambda e: e.start)


class Gazetteer:
    """Named places and addressed buildings the memory knows, for resolving text.

    Args:
        features: One row per feature: ``id``, ``name`` (or None), ``street``, ``housenumber`` and
            ``lon``/``lat`` (EPSG:4326).
        min_score: Least similarity (0–1) of a fuzzy street or name match.
    """

    def __init__(self, features: pd.DataFrame, *, min_score: float = 0.85) -> None:
        self.features = features.reset_index(drop=True)
        self.min_score = min_score
        self._by_street: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        self._by_name: dict[str, list[int]] = defaultdict(list)
        for i, row in self.features.iterrows():
            if isinstance(row["street"], str) and isinstance(row["housenumber"], str):
                self._by_street[normalize(row["street"])][_clean_number(row["housenumber"]).lower()].append(int(i))
            if isinstance(row["name"], str) and row["name"].strip():
                self._by_name[normalize(row["name"])].append(int(i))

    @classmethod
    def from_frames(cls, buildings: Any, places: Any | None = None, *, min_score: float = 0.85) -> Gazetteer:
        """A gazetteer of GeoDataFrames (any CRS) with columns ``name``, ``addr:street``, ``addr:housenumber``.

        Args:
            buildings: Features with addresses and/or names (buildings, address points).
            places: Named places (suburbs, squares, parks, streets); ``name`` is enough.
            min_score: Least similarity of a fuzzy match, 0–1.

        Raises:
            ProcessingError: a frame has no CRS or none of the columns.
        """
        parts = []
        for kind, frame in (("building", buildings), ("place", places)):
            if frame is None or len(frame) == 0:
                continue
            if frame.crs is None:
                raise ProcessingError(f"the {kind} frame has no CRS; set it (e.g. frame.set_crs(4326)) first")
            cols = [c for c in ("name", "addr:street", "addr:housenumber") if c in frame.columns]
            if not cols:
                raise ProcessingError(
                    f"the {kind} frame has none of the columns name, addr:street, addr:housenumber "
                    f"(it has {list(frame.columns)}); for OSM data expand other_tags with expand_other_tags()"
                )
            f = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
            pts = f.geometry.to_crs(4326).representative_point()
            ids = f["osm_id"] if "osm_id" in f.columns else f.index.to_series()
            ids = ids.where(ids.notna(), f.get("osm_way_id", ids)) if "osm_way_id" in f.columns else ids
            parts.append(
                pd.DataFrame(
                    {
                        "id": [f"{kind}/{v}" for v in ids.astype(str)],
                        "name": f["name"].to_numpy() if "name" in f else None,
                        "street": f["addr:street"].to_numpy() if "addr:street" in f else None,
                        "housenumber": f["addr:housenumber"].to_numpy() if "addr:housenumber" in f else None,
                        "lon": pts.x.to_numpy(),
                        "lat": pts.y.to_numpy(),
                    }
                )
            )
        if not parts:
            raise ProcessingError("no features to build a gazetteer from; pass buildings or places with names")
        return cls(pd.concat(parts, ignore_index=True), min_score=min_score)

    @classmethod
    def from_memory(
        cls,
        root: Any,
        tiles: Iterable[Any],
        month: str,
        *,
        place_layers: Iterable[str] = ("places",),
        min_score: float = 0.85,
    ) -> Gazetteer:
        """The gazetteer of the GIS layers the pipeline wrote for ``month`` (``YYYY-MM``) of ``tiles``.

        Reads the ``buildings`` GeoParquet of each tile-month (names and ``addr:*``)
        and the named-place layers (``places``: towns, suburbs, neighbourhoods) where
        the pipeline wrote them (a source without places has none), from
        ``root.vector_uri(layer, tile, month)``. Tiles in different CRSs are merged in
        EPSG:4326; a feature in two overlapping tiles (same ``osm_id``) counts once.

        Args:
            root: the ``memories.store.StorageRoot`` the ``gis_layers`` asset wrote to.
            tiles: tile ids (``"33TVM"``) or ``TileGrid`` objects.
            month: the month whose layers to read; features built later are absent.
            place_layers: layers read as named places besides the buildings' names.
            min_score: least similarity of a fuzzy match, 0–1.

        Raises:
            StorageError: a tile-month's buildings were not written (the message names it).
        """
        import geopandas as gpd

        from memories.earth.gis import read_tile_layers

        frames: dict[str, list[Any]] = {"buildings": [], "places": []}
        tile_ids = [str(getattr(t, "tile_id", t)) for t in tiles]
        if not tile_ids:
            raise ProcessingError("no tiles given to build a gazetteer from; pass the tile ids the memory holds")
        for tile in tile_ids:
            layers = read_tile_layers(root, tile, month, ["buildings", *place_layers], optional=tuple(place_layers))
            frames["buildings"].append(layers.pop("buildings").to_crs(4326))
            frames["places"].extend(frame.to_crs(4326) for frame in layers.values())

        def merged(parts: list[Any]) -> Any:
            parts = [p for p in parts if len(p)]
            if not parts:
                return None
            g = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4326)
            return g.drop_duplicates("osm_id") if "osm_id" in g.columns else g

        return cls.from_frames(merged(frames["buildings"]), merged(frames["places"]), min_score=min_score)

    def resolve(self, text: str) -> list[Match]:
        """The features the addresses and place names in ``text`` point to (best match per entity).

        An ambiguous address or place name (several features carry it: ``Old Town``
        in two towns) resolves to the feature nearest the unambiguous places the
        same text names.
        """
        entities = extract_entities(text, self)
        places = {e: self._match_place(e) for e in entities if e.kind == "place"}
        context = [(m.lon, m.lat) for m in places.values() if m is not None and m.candidates == 1]
        out = []
        for e in entities:
            if e.kind == "address":
                m = self._match_address(e, context)
            else:
                m = places[e]
                if m is not None and m.candidates > 1 and context:
                    m = self._match_place(e, context)
            if m is not None:
                out.append(m)
        return out

    def geocode(self, query: str) -> Match | None:
        """The single best feature for a query such as ``"123 Main St"`` or a place name, or None."""
        # Typed queries are often all lower case; the extraction rules want capitals.
        matches = self.resolve(query) or self.resolve(string.capwords(query))
        if not matches:
            q = normalize(query)
            hit = self._best_name(q)
            if hit is None:
                return None
            e = Entity("place", query, 0, len(query))
            return self._feature_match(e, self._by_name[hit[0]][0], hit[1])
        return max(matches, key=lambda m: m.score)

    # -- matching --------------------------------------------------------------
    def _match_address(self, e: Entity, context: list[tuple[float, float]] | None = None) -> Match | None:
        assert e.street is not None and e.housenumber is not None
        street = normalize(e.street)
        number = e.housenumber.lower()
        best: tuple[float, list[int]] | None = None
        for candidate in self._street_candidates(street):
            score = difflib.SequenceMatcher(None, street, candidate).ratio()
            rows = self._by_street[candidate].get(number)
            if rows and score >= self.min_score and (best is None or score > best[0]):
                best = (score, rows)
        if best is None:
            return None
        return self._feature_match(e, self._nearest(best[1], context), best[0], candidates=len(best[1]))

    def _match_place(self, e: Entity, context: list[tuple[float, float]] | None = None) -> Match | None:
        hit = self._best_name(normalize(e.text))
        if hit is None:
            return None
        rows = self._by_name[hit[0]]
        return self._feature_match(e, self._nearest(rows, context), hit[1], candidates=len(rows))

    def _nearest(self, rows: list[int], context: list[tuple[float, float]] | None) -> int:
        """Of features carrying the same address, the one nearest a place of the text (great circle), or the first."""
        if len(rows) == 1 or not context:
            return rows[0]
        f = self.features

        def distance(row: int) -> float:
            lon, lat = float(f.at[row, "lon"]), float(f.at[row, "lat"])
            return min(_haversine_m(lon, lat, clon, clat) for clon, clat in context)

        return min(rows, key=distance)

    def _best_name(self, q: str) -> tuple[str, float] | None:
        if q in self._by_name:
            return q, 1.0
        close = difflib.get_close_matches(q, list(self._by_name), n=1, cutoff=max(self.min_score, 0.9))
        return (close[0], difflib.SequenceMatcher(None, q, close[0]).ratio()) if close else None

    def _street_candidates(self, street: str) -> Iterable[str]:
        if street in self._by_street:
            return [street]
        return difflib.get_close_matches(street, list(self._by_street), n=5, cutoff=self.min_score)

    def _is_street(self, words: str) -> bool:
        n = normalize(words)
        return n in self._by_street or bool(difflib.get_close_matches(n, list(self._by_street), 1, self.min_score))

    def _place_spans(self, text: str, start: int, end: int) -> list[Entity]:
        """Longest runs of words in ``text[start:end]`` that match a known name."""
        words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
        out: list[Entity] = []
        i = 0
        while i < len(words):
            for j in range(min(len(words), i + 5), i, -1):
                a, b = words[i][0], words[j - 1][1]
                span = text[a:b].rstrip(".,;:")
                if len(span) > 2 and self._best_name(normalize(span)) is not None:
                    out.append(Entity("place", span, a, a + len(span)))
                    i = j - 1
                    break
            i += 1
        return out

    def _feature_match(self, e: Entity, row: int, score: float, *, candidates: int = 1) -> Match:
        f = self.features.iloc[row]
        if isinstance(f["street"], str) and isinstance(f["housenumber"], str) and e.kind == "address":
            label = f"{f['street']} {f['housenumber']}"
        else:
            label = str(f["name"])
        return Match(e, str(f["id"]), label, float(f["lon"]), float(f["lat"]), round(float(score), 3), candidates)


def expand_other_tags(frame: Any, keys: Iterable[str] = ("addr:street", "addr:housenumber")) -> Any:
    """``frame`` with the OSM tags ``keys`` taken out of GDAL's ``other_tags`` hstore string as columns."""
    out = frame.copy()
    tags = out["other_tags"] if "other_tags" in out.columns else pd.Series([None] * len(out), index=out.index)
    for key in keys:
        pattern = re.compile(rf'"{re.escape(key)}"=>"((?:[^"\\]|\\.)*)"')
        out[key] = [(m.group(1) if (m := pattern.search(t)) else None) if isinstance(t, str) else None for t in tags]
    return out


# -- helpers ---------------------------------------------------------------------


def _haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two EPSG:4326 points (degrees)."""
    import math

    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def _clean_number(n: str) -> str:
    return re.sub(r"\s+", "", n).replace("–", "-")


def _trim_leading(street: str, gazetteer: Gazetteer | None) -> str | None:
    """The street part of a European-order candidate: drop leading words until it looks like a street."""
    words = street.split(" ")
    for k in range(len(words)):
        cand = " ".join(words[k:])
        low = cand.lower()
        if gazetteer is not None and gazetteer._is_street(cand):
            return cand
        if low.endswith(_EURO_SUFFIXES) and (gazetteer is None or k == len(words) - 1):
            return cand
    return None
