"""The benchmark scenarios, each as an interpreter definition and a hand-written input.

Definitions are generated as plain data, validated with `dsl.validate.validate_data`,
normalised with `dsl.bundle.normalise` and published where the bench workers look
for definitions (`published`, as `tdsl worker --definitions DIR` does). The
interpreter side then starts each by its name with the user's input only, as any
Temporal client does (`temporal workflow start --type NAME`).
"""

from __future__ import annotations

import atexit
import json
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import handwritten
from benchmarks.handwritten import ACTIVITY, RETRY, SAMPLE_STORE_TIMEOUT, START_TO_CLOSE
from dsl.bundle import normalise
from dsl.models import TaskStep
from dsl.policies import step_settings
from dsl.validate import ValidatedDefinition, validate_data
from interpreter.runtime.outcomes import temporal_retry

__all__ = [
    "DAG_SEED",
    "PUBLISHED",
    "Scenario",
    "chain",
    "dag",
    "fanout",
    "layered_dag",
    "sample",
]

DAG_SEED = 20_240_601
SAMPLE_FILE = Path(__file__).resolve().parents[1] / "definitions" / "sample-workflow.json"
PUBLISHED = Path(tempfile.mkdtemp(prefix="tdsl-bench-definitions-"))
"""Where the bench workers find the definitions (their `--definitions` directory)."""
atexit.register(shutil.rmtree, PUBLISHED, True)


@dataclass(frozen=True)
class Scenario:
    """One workload, ready to start on either side."""

    key: str
    label: str
    steps: int
    """Activities one run executes (the same on both sides)."""
    interpreter_type: str
    """The definition's name: its workflow type."""
    handwritten_workflow: str
    handwritten_args: tuple[Any, ...]

    def start_args(self, side: str) -> tuple[str, tuple[Any, ...]]:
        """The workflow type and its arguments for `client.start_workflow`."""
        if side == "interpreter":
            return self.interpreter_type, ({},)
        return self.handwritten_workflow, self.handwritten_args


def _task(step_id: str, parameters: dict[str, Any], deps: list[str]) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "task",
        "action": ACTIVITY,
        "parameters": parameters,
        "dependencies": deps,
    }


def published(data: dict[str, Any], *, tasks_only: bool = True) -> str:
    """Validate a generated definition and publish it for the bench workers; its type."""
    checked = validate_data(data, activities={ACTIVITY})
    if tasks_only:
        check_options(checked)
    path = PUBLISHED / f"{checked.definition.name}.json"
    path.write_text(json.dumps(normalise(checked.definition)))
    return checked.definition.name


def check_options(checked: ValidatedDefinition) -> None:
    """Fail loudly if the interpreter would call the activity with other options."""
    definition = checked.definition
    for step in definition.steps:
        assert isinstance(step, TaskStep), step
        settings = step_settings(definition, step)
        expected_timeout = SAMPLE_STORE_TIMEOUT if step.id == "store" else START_TO_CLOSE
        problems = []
        if settings.timeout != expected_timeout:
            problems.append(f"timeout {settings.timeout} != {expected_timeout}")
        if temporal_retry(settings.retry_policy) != RETRY:
            problems.append(f"retry {temporal_retry(settings.retry_policy)} != {RETRY}")
        if settings.heartbeat_timeout or settings.task_queue or step.local:
            problems.append("heartbeat, task queue or local activity set")
        if problems:
            raise AssertionError(f"step {step.id}: " + "; ".join(problems))


def chain(n: int) -> Scenario:
    steps = [_task(f"s{i:04d}", {"i": i}, [f"s{i - 1:04d}"] if i else []) for i in range(n)]
    return Scenario(
        key=f"chain-{n}",
        label=f"chain of {n} sequential activities",
        steps=n,
        interpreter_type=published({"name": f"bench-chain-{n}", "steps": steps}),
        handwritten_workflow=handwritten.CHAIN,
        handwritten_args=(n,),
    )


def fanout(n: int) -> Scenario:
    ids = [f"p{i:04d}" for i in range(n)]
    steps = [_task(step_id, {"i": i}, []) for i, step_id in enumerate(ids)]
    steps.append(_task("join", {}, ids))
    return Scenario(
        key=f"fanout-{n}",
        label=f"fan-out of {n} parallel activities + join",
        steps=n + 1,
        interpreter_type=published({"name": f"bench-fanout-{n}", "steps": steps}),
        handwritten_workflow=handwritten.FANOUT,
        handwritten_args=(n,),
    )


def layered_dag(layers: int, width: int, seed: int = DAG_SEED) -> list[dict[str, Any]]:
    """`layers` x `width` nodes; each node past the first layer depends on 1-3 random
    nodes of the layer before. Topological (layer) order, fixed by the seed."""
    rng = random.Random(seed)
    nodes: list[dict[str, Any]] = []
    previous: list[str] = []
    for layer in range(layers):
        current = [f"l{layer:02d}n{i:02d}" for i in range(width)]
        for i, node_id in enumerate(current):
            deps = sorted(rng.sample(previous, rng.randint(1, 3))) if previous else []
            nodes.append({"id": node_id, "deps": deps, "parameters": {"layer": layer, "i": i}})
        previous = current
    return nodes


def dag(layers: int, width: int) -> Scenario:
    nodes = layered_dag(layers, width)
    steps = [_task(n["id"], n["parameters"], n["deps"]) for n in nodes]
    return Scenario(
        key=f"dag-{len(nodes)}",
        label=f"layered random DAG {layers}x{width} = {len(nodes)} nodes",
        steps=len(nodes),
        interpreter_type=published({"name": f"bench-dag-{len(nodes)}", "steps": steps}),
        handwritten_workflow=handwritten.DAG,
        handwritten_args=(nodes,),
    )


def sample() -> Scenario:
    """The 3-step seed sample, its actions replaced by the shared no-op activity."""
    data = json.loads(SAMPLE_FILE.read_text())
    for step in data["steps"]:
        step["action"] = ACTIVITY
    return Scenario(
        key="sample-3",
        label="seed sample (3 sequential steps)",
        steps=3,
        interpreter_type=published(data),
        handwritten_workflow=handwritten.SAMPLE,
        handwritten_args=(),
    )


def foreach(items: int, *, join: Any = "all") -> tuple[str, tuple[Any, ...]]:
    """Interpreter only (a hand-written workflow has no foreach): one activity per item;
    the workflow type and its arguments, as `Scenario.start_args`.

    Past 200 items the interpreter fans the items out through child workflows of 200,
    so this also measures the batched path (for a count join too).
    """
    data = {
        "name": f"bench-foreach-{items}",
        "steps": [
            {
                "id": "each",
                "type": "foreach",
                "items": "${{ input.items }}",
                "join": join,
                "step": {"id": "one", "action": ACTIVITY, "parameters": {"i": "${{ index }}"}},
            }
        ],
    }
    return published(data, tasks_only=False), ({"items": list(range(items))},)


def loop(iterations: int) -> tuple[str, tuple[Any, ...]]:
    """Interpreter only: a top-level `loop` of one activity per iteration."""
    data = {
        "name": f"bench-loop-{iterations}",
        "steps": [
            {
                "id": "poll",
                "type": "loop",
                "max_iterations": iterations,
                "while": {"<": [{"var": "iteration"}, iterations]},
                "steps": [
                    {"id": "check", "action": ACTIVITY, "parameters": {"i": "${{ iteration }}"}}
                ],
            }
        ],
    }
    return published(data, tasks_only=False), ({},)
