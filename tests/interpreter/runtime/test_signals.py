"""`SignalBuffer`: payloads per name, the first arrival among several names first."""

from __future__ import annotations

from interpreter.runtime.signals import SignalBuffer


def test_the_first_arrival_among_names_is_taken_first() -> None:
    buffer = SignalBuffer()
    for name, payload in [("b", 1), ("a", 2), ("b", 3), ("c", 4)]:
        buffer.add(name, payload)
    assert buffer.take_first(["a", "b"]) == ("b", 1)
    assert buffer.take_first(["a", "b"]) == ("a", 2)
    assert buffer.take_first(["c"]) == ("c", 4)
    assert buffer.has_any(["a", "c"]) is False
    assert buffer.take_first(["a"]) is None
    assert buffer.take_first(["b"]) == ("b", 3)


def test_a_continuation_keeps_the_arrival_order() -> None:
    buffer = SignalBuffer()
    for name, payload in [("b", 1), ("a", 2), ("a", 3)]:
        buffer.add(name, payload)
    payloads, arrivals = buffer.export()
    assert payloads == {"b": [1], "a": [2, 3]}
    restored = SignalBuffer.restore(payloads, arrivals)
    restored.add("b", 4)
    assert [restored.take_first(["a", "b"]) for _ in range(4)] == [
        ("b", 1),
        ("a", 2),
        ("a", 3),
        ("b", 4),
    ]


def test_runs_carried_before_arrival_numbers_take_them_in_name_order() -> None:
    restored = SignalBuffer.restore({"x": [1, 2], "y": [3]}, {})
    restored.add("x", 4)
    assert [restored.take_first(["y", "x"]) for _ in range(4)] == [
        ("x", 1),
        ("x", 2),
        ("y", 3),
        ("x", 4),
    ]
