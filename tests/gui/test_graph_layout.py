"""The dependency graph's layout, without Qt."""

from __future__ import annotations

from immutable_installer.gui.graph_layout import BLOCKED, NODE_WIDTH, layout

STEPS = [
    {"group": "base", "wheels": [{"name": "torch", "version": "2.0", "requires": []},
                                 {"name": "accel", "version": "1.0", "requires": ["torch"]}]},
    {"group": "app", "wheels": [{"name": "app", "version": "3.0", "requires": ["accel", "torch"]}]},
]


def test_groups_are_columns_in_install_order_and_requires_are_edges() -> None:
    graph = layout(STEPS)
    assert [c.group for c in graph.columns] == ["base", "app"]
    assert graph.nodes["app"].x > graph.nodes["torch"].x == graph.nodes["accel"].x
    assert {(e.source, e.target) for e in graph.edges} == {("accel", "torch"), ("app", "accel"), ("app", "torch")}
    assert not any(e.red for e in graph.edges) and not any(n.red for n in graph.nodes.values())
    assert graph.width == 2 * NODE_WIDTH + (graph.columns[1].x - NODE_WIDTH)


def test_a_blacklist_chain_is_red_to_its_end_even_when_the_end_is_not_pinned() -> None:
    graph = layout(STEPS, [["app", "accel", "torchao"]])
    assert [c.group for c in graph.columns] == ["base", "app", BLOCKED]
    assert graph.nodes["torchao"].red and not graph.nodes["torchao"].pinned
    assert graph.nodes["app"].red and graph.nodes["accel"].red and not graph.nodes["torch"].red
    red = {(e.source, e.target) for e in graph.edges if e.red}
    assert red == {("app", "accel"), ("accel", "torchao")}
