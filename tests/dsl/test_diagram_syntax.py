"""`tdsl graph` output parses for every legal step id and name: DOT by pydot's parser,
Mermaid by Mermaid's own (the npm package, run by node where node exists)."""

from __future__ import annotations

import json
import random
import shutil
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydot
import pytest

from dsl.diagram import STATE_COLOURS, render_diagram
from dsl.validate import validate_text
from tests.support.cli import ROOT

# pydot's grammar still calls pyparsing's camelCase names, which pyparsing 3.3 deprecates
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TRICKY_IDS = [
    "end", "graph", "subgraph", "style", "class", "click", "classDef", "linkStyle",
    "flowchart", "direction", "default", "call", "href", "TD", "LR", "o", "x",
    "x--y", "a-b", "a_b", "a__b", "_x", "x-", "end-", "A--B--C", "digraph", "node",
    "edge", "strict", "cluster_x", "Subgraph", "END",
]  # fmt: skip
TRICKY_NAMES = [
    'a "quoted" name', "pipes | and [brackets] and {braces}", "#35; and #quot; and #",
    "<b>html</b> & ampersand", "back\\slash", "new\nline", "ünïcödé ✓", "-->", "; semicolon",
    "%% comment", "end",
]  # fmt: skip


def _definition(ids: list[str], names: list[str]) -> str:
    """Every step type, with the 15 given ids and display names."""
    first, fan, left, right, each, inner, choose, then, other, wait, sig, loop, body, alert, _ = ids
    name = [json.dumps(n) for n in names]
    return f"""\
name: tricky
steps:
  - {{id: {first}, name: {name[0]}, action: echo}}
  - id: {fan}
    name: {name[1]}
    type: parallel
    dependencies: [{first}]
    branches:
      - {{name: one, steps: [{{id: {left}, name: {name[2]}, action: echo}}]}}
      - {{name: two, steps: [{{id: {right}, action: log, parameters: {{message: hi}}}}]}}
  - id: {each}
    name: {name[3]}
    type: foreach
    items: [1, 2]
    dependencies: [{fan}]
    step: {{id: {inner}, action: echo}}
  - id: {choose}
    name: {name[4]}
    type: decision
    dependencies: [{each}]
    branches:
      - {{when: {{"==": [1, 1]}}, next: [{then}]}}
    default: [{other}]
  - {{id: {then}, name: {name[5]}, type: wait, duration: 1s}}
  - {{id: {other}, name: {name[6]}, type: fail, message: no}}
  - {{id: {wait}, name: {name[7]}, type: signal, signal: go, dependencies: [{then}]}}
  - {{id: {sig}, name: {name[8]}, type: set, values: {{a: 1}}, dependencies: [{wait}]}}
  - id: {loop}
    name: {name[9]}
    type: loop
    dependencies: [{sig}]
    max_iterations: 3
    until: {{"==": [1, 1]}}
    steps: [{{id: {body}, action: echo}}]
on_failure:
  - {{id: {alert}, name: {name[10]}, action: log, parameters: {{message: failed}}}}
"""


def _id_sets() -> Iterator[list[str]]:
    """The tricky ids, then random legal ones (`[A-Za-z_][A-Za-z0-9_-]*`)."""
    pool = list(TRICKY_IDS)
    while len(pool) % 15:
        pool.append(f"pad{len(pool)}")
    for start in range(0, len(pool), 15):
        yield pool[start : start + 15]
    rng = random.Random(20261202)
    head, tail = string.ascii_letters + "_", string.ascii_letters + string.digits + "_-"
    for _ in range(20):
        ids: set[str] = set()
        while len(ids) < 15:
            ids.add(rng.choice(head) + "".join(rng.choices(tail, k=rng.randint(0, 6))))
        yield sorted(ids)


def _graphs() -> list:  # type: ignore[type-arg]
    graphs = []
    for index, ids in enumerate(_id_sets()):
        names = TRICKY_NAMES[index % len(TRICKY_NAMES) :] + TRICKY_NAMES
        graphs.append(validate_text(_definition(ids, names), file=f"tricky-{index}.yaml").graph)
    return graphs


GRAPHS = _graphs()


@pytest.mark.parametrize("index", range(len(GRAPHS)))
def test_dot_parses(index: int) -> None:
    text = render_diagram(GRAPHS[index], "dot")
    parsed = pydot.graph_from_dot_data(text)
    assert parsed, text
    names = {n.get_name().strip('"') for n in parsed[0].get_nodes()}
    for sub in parsed[0].get_subgraphs():
        names |= {n.get_name().strip('"') for n in sub.get_nodes()}
    assert set(GRAPHS[index].scope_of) <= names | _nested_names(parsed[0])


def _nested_names(graph: pydot.Dot) -> set[str]:
    found: set[str] = set()
    stack = list(graph.get_subgraphs())
    while stack:
        sub = stack.pop()
        found |= {n.get_name().strip('"') for n in sub.get_nodes()}
        stack += sub.get_subgraphs()
    return found


@pytest.fixture(scope="module")
def mermaid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with Mermaid and jsdom from the npm registry (skipped without node)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed: Mermaid's parser cannot run")
    directory = tmp_path_factory.mktemp("mermaid")
    done = subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "mermaid@12", "jsdom@26"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"npm could not install mermaid: {done.stderr.strip()[:300]}")
    shutil.copy(ROOT / "tests" / "support" / "mermaid_parse.mjs", directory / "parse.mjs")
    return directory


def _mermaid_errors(directory: Path, texts: list[str]) -> list[str | None]:
    done = subprocess.run(
        ["node", "parse.mjs"],
        cwd=directory,
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    errors: list[str | None] = json.loads(done.stdout)
    return errors


def _states(graph: Any) -> dict[str, str]:
    """A state for every step but the last, round robin (the last stays pending)."""
    states = list(STATE_COLOURS)
    return {step: states[i % len(states)] for i, step in enumerate(list(graph.scope_of)[:-1])}


@pytest.mark.parametrize("index", [0, 1, 5])
def test_a_coloured_dot_parses_with_each_steps_colour(index: int) -> None:
    graph = GRAPHS[index]
    states = _states(graph)
    text = render_diagram(graph, "dot", states)
    parsed = pydot.graph_from_dot_data(text)
    assert parsed, text
    state = next(iter(states.values()))
    assert f'fillcolor="{STATE_COLOURS[state][0]}"' in text
    assert json.loads(render_diagram(graph, "json", states))["nodes"][0]["status"] == state


def test_mermaid_parses_with_mermaids_own_parser(mermaid: Path) -> None:
    texts = [render_diagram(graph, "mermaid") for graph in GRAPHS]
    texts += [render_diagram(graph, "mermaid", _states(graph)) for graph in GRAPHS[:5]]
    errors = _mermaid_errors(mermaid, texts)
    failed = [(text, error) for text, error in zip(texts, errors, strict=True) if error]
    assert failed == []


def test_the_parser_does_refuse_what_mermaid_refuses(mermaid: Path) -> None:
    """The check can fail: raw keywords and `--` in ids are what it exists to catch."""
    raw = ['flowchart TD\n  end["x"]\n  end --> b', 'flowchart TD\n  x--y["x"]']
    assert all(_mermaid_errors(mermaid, raw))
