"""Drawing the graph in Mermaid, DOT and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from dsl.diagram import render_diagram, to_json
from dsl.validate import validate_file

EXAMPLE = Path(__file__).resolve().parents[2] / "definitions" / "order-fulfilment.yaml"


def test_mermaid_has_nodes_subgraphs_and_labelled_decisions() -> None:
    text = render_diagram(validate_file(EXAMPLE).graph, "mermaid")
    assert text.startswith("flowchart TD\n")
    assert 'subgraph s_prepare["Reserve stock and charge<br/>parallel"]' in text
    assert 's_route{"Choose shipping<br/>decision"}' in text
    assert 's_route -->|"big_order"| s_ship__freight' in text
    assert 's_route -->|"default"| s_ship__parcel' in text
    assert "s_validate --> s_prepare" in text


def test_dot_is_a_digraph_with_clusters() -> None:
    text = render_diagram(validate_file(EXAMPLE).graph, "dot")
    assert text.startswith('digraph "order-fulfilment 1.2.0" {')
    assert 'subgraph "cluster_prepare/stock"' in text
    assert '"route" -> "ship_parcel" [label="default"];' in text
    assert text.rstrip().endswith("}")


def test_json_lists_every_node_and_edge() -> None:
    graph = validate_file(EXAMPLE).graph
    data = json.loads(render_diagram(graph, "json"))
    assert data == to_json(graph)
    ids = [node["id"] for node in data["nodes"]]
    assert sorted(ids) == sorted(graph.scope_of)
    assert {
        "from": "route",
        "to": "ship_freight",
        "kind": "decision",
        "label": "big_order",
    } in data["edges"]
    assert {"from": "charge", "to": "receipt", "kind": "dependency"} in data["edges"]
    reserve = next(node for node in data["nodes"] if node["id"] == "reserve")
    assert reserve == {
        "id": "reserve",
        "name": "Reserve stock",
        "type": "task",
        "scope": "prepare/stock",
        "action": "echo",
        "parent": "prepare",
    }
