"""Context memory: a typed knowledge graph of tiles, places, features, events and reports.

Nodes are entities with a type (``tile``, ``place``, ``building``, ``road``,
``parcel``, ``water``, ``event``, ``report``) and attributes; edges are typed
relations (``located_in``, ``part_of``, ``adjacent_to``, ``affected_by``,
``reported_in``, ``caused_by``). The graph is a networkx ``MultiDiGraph`` (two
entities may be tied by several relations), persisted as node-link JSON under the
storage root, written whole or not at all.

``ContextMemory.from_pipeline`` fills it from the ``gis_layers`` of a month: every
feature is ``located_in`` its tile, a building is ``part_of`` the land-use parcel
under it, a building is ``adjacent_to`` the roads within ``ADJACENT_M`` metres and
parcels that share a border are ``adjacent_to`` each other; events of a
``RelationshipMemory`` add ``affected_by`` edges from their affected members, and
``reported_in`` edges to the reports that documented them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from memories.errors import ConfigError
from memories.json_values import json_default_or_str
from memories.store.paths import StorageRoot

if TYPE_CHECKING:
    import networkx as nx

    from memories.grid import TileGrid
    from memories.memory.relationship import RelationshipMemory

MEMORY_KIND = "context"
ENTITY_TYPES = ("tile", "place", "building", "road", "parcel", "water", "event", "report")
RELATIONS = ("located_in", "part_of", "adjacent_to", "affected_by", "reported_in", "caused_by", "near")
ADJACENT_M = 15.0
"""A building is adjacent to a road within this distance (metres)."""

Direction = Literal["out", "in", "both"]


class ContextMemory:
    """A knowledge graph of typed entities and relations."""

    def __init__(self) -> None:
        import networkx as nx

        self.graph: nx.MultiDiGraph = nx.MultiDiGraph()

    # -- filling ------------------------------------------------------------
    def add_entity(self, entity: str, type: str, **attrs: Any) -> None:  # noqa: A002 - the field's word
        """Add an entity (or update its attributes).

        Raises:
            ConfigError: unknown type.
        """
        if type not in ENTITY_TYPES:
            raise ConfigError(f"entity {entity!r}: type {type!r} is unknown; use one of {ENTITY_TYPES}")
        self.graph.add_node(entity, type=type, **attrs)

    def relate(self, source: str, relation: str, target: str, **attrs: Any) -> None:
        """Add the typed edge ``source -relation-> target`` (once per relation).

        Raises:
            ConfigError: unknown relation or entity.
        """
        if relation not in RELATIONS:
            raise ConfigError(f"relation {relation!r} is unknown; use one of {RELATIONS}")
        for e in (source, target):
            self._require(e)
        if not self.graph.has_edge(source, target, key=relation):
            self.graph.add_edge(source, target, key=relation, **attrs)

    @classmethod
    def from_pipeline(
        cls,
        root: StorageRoot,
        grids: Iterable[TileGrid],
        month: str,
        *,
        relationships: RelationshipMemory | None = None,
    ) -> ContextMemory:
        """The graph of the GIS layers that ``gis_layers`` wrote for ``month``, with the
        events of ``relationships`` (see the module docstring for the relations).

        Raises:
            StorageError: the GIS layers of a tile-month were not materialized.
        """
        from memories.earth.gis import read_tile_layers

        mem = cls()
        for grid in grids:
            mem.add_tile_layers(grid, read_tile_layers(root, grid.tile_id, month), month=month)
        if relationships is not None:
            mem.add_events(relationships)
        return mem

    def add_tile_layers(self, grid: TileGrid, layers: dict[str, Any], *, month: str | None = None) -> None:
        """Entities and relations of one tile's GIS layers (GeoDataFrames in the tile CRS)."""
        from memories.memory.relationship import LAYER_ENTITY, entity_id

        tile = f"tile:{grid.tile_id}"
        self.add_entity(tile, "tile", crs=grid.crs, bbox_wgs84=list(grid.bbox_wgs84))
        ids: dict[str, list[str]] = {}
        for layer, gdf in layers.items():
            etype = LAYER_ENTITY.get(layer)
            if etype is None or gdf is None:
                continue
            tags = [c for c in gdf.columns if c not in ("geometry", "osm_id", "tile_id", "bbox")]
            cent = gdf.geometry.representative_point().to_crs("EPSG:4326")
            ids[layer] = []
            for i, (oid, rec) in enumerate(zip(gdf["osm_id"], gdf[tags].to_dict("records"))):
                eid = entity_id(layer, oid)
                clean = {k: v for k, v in rec.items() if v is not None and v == v}
                self.add_entity(
                    eid,
                    etype,
                    tile=grid.tile_id,
                    lon=round(float(cent.x.iloc[i]), 7),
                    lat=round(float(cent.y.iloc[i]), 7),
                    **clean,
                )
                self.relate(eid, "located_in", tile, month=month)
                ids[layer].append(eid)
        buildings, landuse, roads = layers.get("buildings"), layers.get("landuse"), layers.get("roads")
        if buildings is not None and len(buildings):
            pts = buildings.geometry.representative_point()
            if landuse is not None and len(landuse):
                b_idx, p_idx = landuse.sindex.query(pts, predicate="within")
                for b, p in zip(b_idx.tolist(), p_idx.tolist()):
                    self.relate(ids["buildings"][b], "part_of", ids["landuse"][p])
            if roads is not None and len(roads):
                b_idx, r_idx = roads.sindex.query(buildings.geometry, predicate="dwithin", distance=ADJACENT_M)
                for b, r in zip(b_idx.tolist(), r_idx.tolist()):
                    self.relate(ids["buildings"][b], "adjacent_to", ids["roads"][r])
                    self.relate(ids["roads"][r], "adjacent_to", ids["buildings"][b])
        if landuse is not None and len(landuse) > 1:
            a_idx, b_idx = landuse.sindex.query(landuse.geometry, predicate="touches")
            for a, b in zip(a_idx.tolist(), b_idx.tolist()):
                if a != b:
                    self.relate(ids["landuse"][a], "adjacent_to", ids["landuse"][b])

    def add_events(self, relationships: RelationshipMemory) -> None:
        """Event entities from hyperedges: ``affected`` members are ``affected_by`` the
        event, the event is ``located_in`` its tile and ``reported_in`` its evidence."""
        for e in relationships.events():
            self.add_entity(
                e.id,
                "event",
                kind=e.kind,
                start=e.start.isoformat(),
                end=e.end.isoformat() if e.end else None,
                **e.attrs,
            )
            for m in e.members:
                if m.entity not in self.graph:
                    kind = m.entity.split(":", 1)[0]
                    self.add_entity(m.entity, kind if kind in ENTITY_TYPES else "place")
                if m.role == "affected":
                    self.relate(m.entity, "affected_by", e.id)
                elif m.role == "location":
                    self.relate(e.id, "located_in", m.entity)
                elif m.role == "evidence":
                    self.relate(e.id, "reported_in", m.entity)
                elif m.role == "source":
                    self.relate(e.id, "caused_by", m.entity)

    # -- queries ------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.graph.number_of_nodes())

    def __contains__(self, entity: object) -> bool:
        return entity in self.graph

    def entity(self, entity: str) -> dict[str, Any]:
        """The attributes of an entity (``type`` included)."""
        self._require(entity)
        return dict(self.graph.nodes[entity])

    def entities(self, type: str | None = None, **attrs: Any) -> list[str]:  # noqa: A002
        """Entity ids of one type whose attributes equal ``attrs``, sorted."""
        if type is not None and type not in ENTITY_TYPES:
            raise ConfigError(f"entity type {type!r} is unknown; use one of {ENTITY_TYPES}")
        return sorted(
            n
            for n, d in self.graph.nodes(data=True)
            if (type is None or d.get("type") == type) and all(d.get(k) == v for k, v in attrs.items())
        )

    def relations(self, entity: str, relation: str | None = None, direction: Direction = "out") -> list[str]:
        """The entities one relation step away, sorted."""
        return sorted(self.neighbourhood(entity, 1, [relation] if relation else None, direction) - {entity})

    def neighbourhood(
        self, entity: str, depth: int = 1, relations: Iterable[str] | None = None, direction: Direction = "both"
    ) -> set[str]:
        """Entities within ``depth`` steps of ``entity`` (itself included), following only
        ``relations`` (all when None), along (``out``), against (``in``) or both ways."""
        self._require(entity)
        rels = self._check_relations(relations)
        if depth < 0:
            raise ConfigError(f"depth must be >= 0, got {depth}")
        seen, frontier = {entity}, {entity}
        for _ in range(depth):
            nxt: set[str] = set()
            for n in frontier:
                if direction in ("out", "both"):
                    nxt |= {v for _, v, k in self.graph.out_edges(n, keys=True) if rels is None or k in rels}
                if direction in ("in", "both"):
                    nxt |= {u for u, _, k in self.graph.in_edges(n, keys=True) if rels is None or k in rels}
            frontier = nxt - seen
            seen |= frontier
            if not frontier:
                break
        return seen

    def path(self, source: str, target: str, relations: Iterable[str] | None = None) -> list[str]:
        """A shortest chain of entities from ``source`` to ``target`` over relations
        taken either way; empty when they are not connected."""
        import networkx as nx

        self._require(source)
        self._require(target)
        rels = self._check_relations(relations)
        g = self.graph
        if rels is not None:
            g = nx.subgraph_view(g, filter_edge=lambda u, v, k: k in rels)
        try:
            return list(nx.shortest_path(g.to_undirected(as_view=True), source, target))
        except nx.NetworkXNoPath:
            return []

    def path_relations(self, path: list[str]) -> list[str]:
        """The relation of each step of a path (the first found, either way)."""
        out = []
        for a, b in zip(path, path[1:]):
            keys = list(self.graph.get_edge_data(a, b, default={})) or list(self.graph.get_edge_data(b, a, default={}))
            out.append(sorted(keys)[0])
        return out

    # -- persistence --------------------------------------------------------
    def save(self, root: StorageRoot, name: str = "default") -> str:
        """Write the graph as node-link JSON (whole or not at all); returns its URI."""
        import networkx as nx

        uri = root.memory_uri(MEMORY_KIND, f"{name}.json")
        data = nx.node_link_data(self.graph, edges="edges")
        root.write_bytes(uri, json.dumps(data, default=json_default_or_str).encode())
        return uri

    @classmethod
    def load(cls, root: StorageRoot, name: str = "default") -> ContextMemory:
        """Read a graph written by ``save``."""
        import networkx as nx

        data = json.loads(root.read_bytes(root.memory_uri(MEMORY_KIND, f"{name}.json")))
        mem = cls()
        mem.graph = nx.node_link_graph(data, directed=True, multigraph=True, edges="edges")
        return mem

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of entities per type and of edges per relation."""
        nodes: dict[str, int] = {}
        for _, d in self.graph.nodes(data=True):
            nodes[d.get("type", "?")] = nodes.get(d.get("type", "?"), 0) + 1
        edges: dict[str, int] = {}
        for _, _, k in self.graph.edges(keys=True):
            edges[k] = edges.get(k, 0) + 1
        return {"entities": nodes, "relations": edges}

    # -- helpers ------------------------------------------------------------
    def _require(self, entity: str) -> None:
        if entity not in self.graph:
            raise ConfigError(
                f"entity {entity!r} is not in the context memory; add it with add_entity() or fill the "
                "memory with ContextMemory.from_pipeline()"
            )

    @staticmethod
    def _check_relations(relations: Iterable[str] | None) -> set[str] | None:
        if relations is None:
            return None
        rels = set(relations)
        bad = rels - set(RELATIONS)
        if bad:
            raise ConfigError(f"relations {sorted(bad)} are unknown; use some of {RELATIONS}")
        return rels


ContextMemoryManager = ContextMemory
"""The seed's name of the context memory."""
