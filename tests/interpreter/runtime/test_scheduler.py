"""The scheduler's readiness logic, on hand-made and hypothesis-generated DAGs."""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from dsl.validate import validate_data
from interpreter.runtime.scheduler import Readiness


def _readiness(definition: dict) -> tuple[Readiness, dict]:
    graph = validate_data(definition).graph
    scope = graph.main
    readiness = Readiness(
        scope.order,
        {s: scope.prerequisites(s) for s in scope.order},
        {s: scope.dependents(s) for s in scope.order},
        graph.decided_by,
    )
    return readiness, {s: scope.prerequisites(s) for s in scope.order}


def test_chain_becomes_ready_one_by_one() -> None:
    readiness, _ = _readiness(
        {
            "name": "c",
            "steps": [
                {"id": "a", "action": "x"},
                {"id": "b", "action": "x", "dependencies": ["a"]},
            ],
        }
    )
    assert readiness.roots() == ["a"]
    assert readiness.finish("a", "completed") == ["b"]
    assert not readiness.dead("b")


def test_skipped_inputs_make_a_dead_path_but_one_live_input_is_enough() -> None:
    readiness, _ = _readiness(
        {
            "name": "d",
            "steps": [
                {"id": "a", "action": "x"},
                {"id": "b", "action": "x"},
                {"id": "only_a", "action": "x", "dependencies": ["a"]},
                {"id": "both", "action": "x", "dependencies": ["a", "b"]},
            ],
        }
    )
    assert readiness.finish("a", "skipped") == ["only_a"]
    assert readiness.dead("only_a")
    assert readiness.finish("b", "completed") == ["both"]
    assert not readiness.dead("both")


def test_decision_targets_not_chosen_are_dead() -> None:
    readiness, _ = _readiness(
        {
            "name": "d",
            "steps": [
                {
                    "id": "d",
                    "type": "decision",
                    "branches": [{"when": True, "next": ["yes"]}],
                    "default": ["no"],
                },
                {"id": "yes", "action": "x"},
                {"id": "no", "action": "x"},
            ],
        }
    )
    assert readiness.finish("d", "completed", chosen=["yes"]) == ["yes", "no"]
    assert not readiness.dead("yes")
    assert readiness.dead("no")


def test_failed_but_continued_steps_keep_their_dependents_alive() -> None:
    readiness, _ = _readiness(
        {
            "name": "f",
            "steps": [
                {"id": "a", "action": "x"},
                {"id": "b", "action": "x", "dependencies": ["a"]},
            ],
        }
    )
    assert readiness.finish("a", "failed") == ["b"]
    assert not readiness.dead("b")


@st.composite
def dags(draw: st.DrawFn) -> dict:
    """Random layered definitions: each step depends on some earlier ones; a few decisions."""
    count = draw(st.integers(min_value=1, max_value=30))
    steps: list[dict] = []
    for index in range(count):
        earlier = [f"s{i}" for i in range(index)]
        dependencies = (
            draw(st.lists(st.sampled_from(earlier), unique=True, max_size=4)) if earlier else []
        )
        steps.append({"id": f"s{index}", "action": "x", "dependencies": dependencies})
    for index in draw(st.lists(st.integers(0, count - 1), unique=True, max_size=3)):
        later = [f"s{i}" for i in range(index + 1, count)]
        if later:
            targets = draw(st.lists(st.sampled_from(later), min_size=1, max_size=2, unique=True))
            steps[index] = {
                "id": f"s{index}",
                "type": "decision",
                "dependencies": steps[index]["dependencies"],
                "branches": [{"when": True, "next": targets}],
            }
    return {"name": "random", "steps": steps}


@given(definition=dags(), data=st.data())
def test_random_dags_run_every_step_once_after_all_prerequisites(
    definition: dict, data: st.DataObject
) -> None:
    readiness, prerequisites = _readiness(definition)
    targets = {
        s["id"]: s["branches"][0]["next"]
        for s in definition["steps"]
        if s.get("type") == "decision"
    }
    finished: dict[str, str] = {}
    chosen_by: dict[str, list[str]] = {}

    def expected_dead(step: str) -> bool:
        """The language's rule, written independently of the scheduler."""
        deciders = [p for p in prerequisites[step] if step in targets.get(p, [])]
        if deciders:
            return not any(step in chosen_by[d] for d in deciders)
        return bool(prerequisites[step]) and all(
            finished[p] == "skipped" for p in prerequisites[step]
        )

    ready = deque(readiness.roots())
    running: list[str] = []
    order: list[str] = []
    while ready or running:
        while ready:
            step = ready.popleft()
            assert step not in finished, "a step became ready twice"
            assert step not in running, "a step became ready twice"
            assert all(p in finished for p in prerequisites[step]), "ready before its prerequisites"
            assert readiness.dead(step) == expected_dead(step)
            if readiness.dead(step):
                finished[step], chosen_by[step] = "skipped", []
                order.append(step)
                ready.extend(readiness.finish(step, "skipped"))
            else:
                running.append(step)
        if running:
            step = running.pop(data.draw(st.integers(0, len(running) - 1), label="completes next"))
            how = data.draw(
                st.sampled_from(["completed", "completed", "failed"]), label=f"{step} ends"
            )
            chosen: list[str] = []
            if step in targets and how == "completed":
                chosen = data.draw(
                    st.lists(st.sampled_from(targets[step]), unique=True), label="chosen"
                )
            finished[step], chosen_by[step] = how, chosen
            order.append(step)
            ready.extend(readiness.finish(step, how, chosen))
    assert sorted(order) == sorted(prerequisites)
    position = {step: i for i, step in enumerate(order)}
    for step, before in prerequisites.items():
        assert all(position[p] < position[step] for p in before)
