"""Loading and validating a generated 10,000-step definition (issue: under 0.5 s)."""

from __future__ import annotations

import json
import statistics
import time

from dsl.validate import validate_text


def _definition(steps: int) -> dict[str, object]:
    return {
        "name": f"validate-{steps}",
        "input": {"type": "object", "properties": {"x": {"type": "number"}}},
        "steps": [
            {
                "id": f"s{i}",
                "action": "echo",
                "parameters": {
                    "i": i,
                    "from": f"${{{{ steps.s{i - 1}.output }}}}" if i else "start",
                },
                "dependencies": [f"s{i - 1}"] if i else [],
                "retry_policy": {"maximum_attempts": 2},
            }
            for i in range(steps)
        ],
    }


def _yaml(data: dict[str, object]) -> str:
    """Block-style YAML, one step after another, as a person would write it."""
    lines = [f"name: {data['name']}", f"input: {json.dumps(data['input'])}", "steps:"]
    for step in data["steps"]:  # type: ignore[attr-defined]
        lines += [
            f"  - id: {step['id']}",
            "    action: echo",
            f"    parameters: {json.dumps(step['parameters'])}",
            f"    dependencies: {json.dumps(step['dependencies'])}",
            "    retry_policy: {maximum_attempts: 2}",
        ]
    return "\n".join(lines) + "\n"


def validation_seconds(
    steps: int, repetitions: int = 3, kinds: tuple[str, ...] = ("yaml", "json")
) -> dict[str, float]:
    """Median seconds of `validate_text` (load + every check) for YAML and JSON text."""
    data = _definition(steps)
    texts = {"yaml": lambda: _yaml(data), "json": lambda: json.dumps(data)}
    result = {}
    for kind in kinds:
        text = texts[kind]()
        times = []
        for _ in range(repetitions):
            began = time.perf_counter()
            validate_text(text, file=f"generated.{kind}")
            times.append(time.perf_counter() - began)
        result[kind] = statistics.median(times)
    return result
