"""The dependency graph's layout, without Qt: install groups as columns in install order, packages as nodes,
``Requires-Dist`` edges (as they apply on the target), and a blacklist chain marked so it can be drawn in red.

A package a chain names that the plan does not pin (the blacklisted package a requirement would pull in)
gets its own last column, "blocked", so the chain can be drawn to its end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NODE_WIDTH = 190.0
NODE_HEIGHT = 28.0
COLUMN_GAP = 100.0
ROW_GAP = 8.0
HEADER = 34.0
BLOCKED = "blocked"


@dataclass(frozen=True)
class Node:
    name: str
    label: str
    group: str
    x: float
    y: float
    red: bool = False
    pinned: bool = True


@dataclass(frozen=True)
class Edge:
    source: str  # the package that requires ...
    target: str  # ... this one
    red: bool = False


@dataclass(frozen=True)
class Column:
    group: str
    x: float


@dataclass(frozen=True)
class GraphLayout:
    columns: tuple[Column, ...]
    nodes: Mapping[str, Node]
    edges: tuple[Edge, ...]

    @property
    def width(self) -> float:
        return len(self.columns) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP

    @property
    def height(self) -> float:
        return max((n.y + NODE_HEIGHT for n in self.nodes.values()), default=HEADER)


def layout(steps: Sequence[Mapping[str, Any]], chains: Iterable[Sequence[str]] = ()) -> GraphLayout:
    """``steps``: the dry-run plan's steps (group, wheels with name, version, requires); ``chains``: blacklist
    chains as package names, root first."""
    chains = [list(c) for c in chains]
    red_nodes = {name for c in chains for name in c}
    red_edges = {(c[i], c[i + 1]) for c in chains for i in range(len(c) - 1)}
    groups = [str(s["group"]) for s in steps]
    pinned = {str(w["name"]) for s in steps for w in s["wheels"]}
    blocked = sorted(red_nodes - pinned)
    if blocked:
        groups.append(BLOCKED)
    columns = tuple(Column(g, i * (NODE_WIDTH + COLUMN_GAP)) for i, g in enumerate(groups))
    x_of = {c.group: c.x for c in columns}
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    for step in steps:
        group = str(step["group"])
        for row, w in enumerate(sorted(step["wheels"], key=lambda w: str(w["name"]))):
            name = str(w["name"])
            nodes[name] = Node(name, f"{name} {w['version']}", group, x_of[group],
                               HEADER + row * (NODE_HEIGHT + ROW_GAP), name in red_nodes)
            edges.extend(Edge(name, str(dep), (name, str(dep)) in red_edges) for dep in w.get("requires", []))
    for row, name in enumerate(blocked):
        nodes[name] = Node(name, f"{name} (blacklisted)", BLOCKED, x_of[BLOCKED],
                           HEADER + row * (NODE_HEIGHT + ROW_GAP), True, False)
    known = {(e.source, e.target) for e in edges}
    # a chain's links the plan's edges lack (a requirement on a package that is not pinned)
    edges.extend(Edge(a, b, True) for a, b in sorted(red_edges - known) if a in nodes and b in nodes)
    return GraphLayout(columns, nodes, tuple(e for e in edges if e.target in nodes))
