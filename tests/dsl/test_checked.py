"""`dsl.checked`: a definition's model and graph, shared by content hash only when the
hash is the content's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dsl import checked
from dsl.bundle import content_hash
from dsl.checked import check_definition, forget_checked, is_remembered, remember_checked


def _definition(name: str, steps: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "steps": [{"id": f"s{i}", "type": "set", "values": {"n": i}} for i in range(steps)],
    }


@pytest.fixture(autouse=True)
def empty() -> Iterator[None]:
    forget_checked()
    yield
    forget_checked()


def test_a_checked_hash_is_built_once() -> None:
    content = _definition("one")
    key = content_hash(content)
    first = check_definition(content, key)
    assert first.problems == ()
    assert first.definition.name == "one"
    assert is_remembered(key)
    assert check_definition(content, key) is first


def test_a_claimed_hash_that_is_not_the_contents_is_not_remembered() -> None:
    real = _definition("real")
    forged = _definition("forged")
    key = content_hash(real)
    assert check_definition(forged, key).definition.name == "forged"
    assert not is_remembered(key)
    assert check_definition(real, key).definition.name == "real"


def test_without_a_key_or_with_problems_nothing_is_remembered() -> None:
    check_definition(_definition("plain"))
    cyclic = {
        "name": "cyclic",
        "steps": [
            {"id": "a", "type": "set", "values": {"v": 1}, "dependencies": ["b"]},
            {"id": "b", "type": "set", "values": {"v": 1}, "dependencies": ["a"]},
        ],
    }
    found = check_definition(cyclic, content_hash(cyclic))
    assert found.problems
    assert not is_remembered(content_hash(cyclic))
    assert not checked._memo


def test_an_invalid_definition_raises_the_models_error() -> None:
    with pytest.raises(ValueError, match="steps"):
        check_definition({"name": "x", "steps": []}, "0" * 64)


def test_the_least_recently_used_go_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checked, "MAX_STEPS", 10)
    keys = []
    for name in ("a", "b", "c"):
        content = _definition(name, steps=4)
        keys.append(content_hash(content))
        check_definition(content, keys[-1])
    assert [is_remembered(k) for k in keys] == [False, True, True]


def test_remembered_models_are_taken_as_given() -> None:
    content = _definition("given")
    built = check_definition(content)
    remember_checked("k" * 64, built.definition, built.graph)
    assert check_definition({"name": "ignored"}, "k" * 64).definition is built.definition
