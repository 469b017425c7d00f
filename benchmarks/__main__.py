"""`python -m benchmarks [--quick]`: interpreter vs hand-written on one real dev server.

Prints the machine, the versions, a markdown table (median of the repetitions) and,
where the interpreter is more than 1.3x slower, the hot spots of a cProfile run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import io
import os
import platform
import pstats
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import psutil
import temporalio
from temporalio.client import Client

from benchmarks import harness, scenarios
from benchmarks.history import history_cost
from benchmarks.large import large_runs, large_table
from benchmarks.scenarios import Scenario
from benchmarks.validation import validation_seconds
from interpreter.dev.servers import find_binary, start_local_env

SIDES = ("handwritten", "interpreter")
ROOT = Path(__file__).resolve().parents[1]
PROFILE_THRESHOLD = 1.3
TARGET_RATIO = 1.05


@dataclass(frozen=True)
class Sizes:
    chain: int
    fanout: int
    dag_layers: int
    dag_width: int
    small: int
    starts: int
    repetitions: int
    foreach: int
    validate: int
    large_chain: int
    large_fanout: int
    large_foreach: int
    large_loop: int


FULL = Sizes(
    chain=200,
    fanout=1000,
    dag_layers=20,
    dag_width=50,
    small=10,
    starts=100,
    repetitions=3,
    foreach=10_000,
    validate=10_000,
    large_chain=10_000,
    large_fanout=3_000,
    large_foreach=10_000,
    large_loop=10_000,
)
QUICK = Sizes(
    chain=50,
    fanout=200,
    dag_layers=10,
    dag_width=20,
    small=10,
    starts=20,
    repetitions=1,
    foreach=500,
    validate=1_000,
    large_chain=1_000,
    large_fanout=500,
    large_foreach=500,
    large_loop=500,
)


@dataclass
class Results:
    runs: dict[tuple[str, str], list[harness.Measurement]] = field(default_factory=dict)
    starts: dict[str, list[list[float]]] = field(default_factory=dict)

    def median(self, key: str, side: str, attribute: str = "seconds") -> float:
        return statistics.median(getattr(m, attribute) for m in self.runs[key, side])

    def best(self, key: str, side: str) -> float:
        return min(m.seconds for m in self.runs[key, side])


def _machine() -> list[str]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cli = subprocess.run(
            [str(find_binary("temporal")), "--version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        cli = "unknown"
    memory = psutil.virtual_memory().total / 2**30
    return [
        f"machine: {os.cpu_count()} logical cores ({psutil.cpu_count(logical=False)} physical), "
        f"{model}, {memory:.1f} GiB, {platform.system()} {platform.release()}",
        f"versions: python {platform.python_version()}, temporalio {temporalio.__version__}, {cli}",
        f"date: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        _load(),
        _interpreter_version(),
    ]


def _interpreter_version() -> str:
    """The commit, whether the language or interpreter code differs from it, and a hash
    of that code as it is on disk (the sandbox re-imports the workflow module per run)."""
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--", "interpreter", "dsl")
    state = f"uncommitted changes in {len(dirty.splitlines())} file(s)" if dirty else "clean"
    return f"interpreter: commit {head}, interpreter/ and dsl/ {state}, code hash {_code_hash()}"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False, timeout=10, cwd=ROOT
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _code_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("interpreter/**/*.py"), *ROOT.glob("dsl/*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def _load() -> str:
    """Other processes share the cores: the load average says how busy the machine was."""
    one, five, _ = os.getloadavg()
    return f"load average: {one:.2f} (1 min), {five:.2f} (5 min)"


def _sides(repetition: int) -> Sequence[str]:
    """ABBA order, so neither side always runs on the warmer (or fuller) server."""
    return SIDES if repetition % 2 == 0 else SIDES[::-1]


MODES = {
    "sandboxed": {"handwritten": True, "interpreter": True},
    "unsandboxed": {"handwritten": False, "interpreter": False},
    "as deployed": {"handwritten": True, "interpreter": False},
}
"""Which side runs in the sandbox. As deployed: the interpreter unsandboxed (what
`tdsl worker` does, `interpreter.worker.workflow_runner`), the hand-written workflow
sandboxed, as a user's workflow runs by default."""


async def _timed(
    client: Client, scenario: Scenario, reps: int, results: Results, *, mode: str = "sandboxed"
) -> None:
    for rep in range(reps):
        for side in _sides(rep):
            sandboxed = MODES[mode][side]
            m = await harness.measure_run(client, scenario, side, sandboxed=sandboxed)
            results.runs.setdefault((scenario.key, side), []).append(m)
            print(
                f"  {scenario.key:<12} {side:<12} rep {rep + 1}"
                f"{'' if mode == 'sandboxed' else f' ({mode})'}: {m.seconds:7.2f} s, "
                f"CPU: process {m.worker_cpu:5.2f} s, workflow code {m.workflow_cpu:5.2f} s "
                f"(sandbox creation {m.instance_cpu * 1000:.0f} ms, collections {m.gc_cpu * 1000:.0f} ms, "
                f"{m.activations} activations, "
                f"longest {m.longest_activation * 1000:.0f} ms), "
                f"server {m.server_cpu:5.2f} s",
                flush=True,
            )


async def _starts(client: Client, scenario: Scenario, sizes: Sizes, results: Results) -> None:
    for rep in range(sizes.repetitions):
        measured = await harness.measure_starts(client, scenario, _sides(rep), sizes.starts)
        for side in SIDES:
            latencies = measured[side]
            results.starts.setdefault(side, []).append(latencies)
            p95, p99 = (_percentile(at)(latencies) * 1000 for at in (95, 99))
            print(
                f"  {'start':<12} {side:<12} rep {rep + 1}: median "
                f"{statistics.median(latencies) * 1000:6.1f} ms, p95 {p95:6.1f} ms, "
                f"p99 {p99:6.1f} ms",
                flush=True,
            )


def _percentile(at: int) -> Callable[[Sequence[float]], float]:
    def percentile(values: Sequence[float]) -> float:
        return statistics.quantiles(values, n=100, method="inclusive")[at - 1]

    return percentile


def _ratio(hand: float, interp: float) -> str:
    ratio = interp / hand if hand else float("nan")
    flag = "" if ratio <= TARGET_RATIO else " ⚠" if ratio <= PROFILE_THRESHOLD else " ✗"
    return f"{ratio:.2f}{flag}"


def _table(results: Results, timed: Sequence[Scenario], cpu: Sequence[Scenario]) -> list[str]:
    lines = [
        "| scenario | hand-written | interpreter | ratio (interp ÷ hand) | ratio of best runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in timed:
        hand, interp = results.median(s.key, "handwritten"), results.median(s.key, "interpreter")
        best = results.best(s.key, "interpreter") / results.best(s.key, "handwritten")
        lines.append(
            f"| {s.label} | {hand:.2f} s | {interp:.2f} s | {_ratio(hand, interp)} | {best:.2f} |"
        )
    for stat, fn in (
        ("median", statistics.median),
        ("p95", _percentile(95)),
        ("p99", _percentile(99)),
    ):
        hand = statistics.median(fn(x) for x in results.starts["handwritten"]) * 1000
        interp = statistics.median(fn(x) for x in results.starts["interpreter"]) * 1000
        lines.append(
            f"| start_workflow latency, {stat} | {hand:.1f} ms | {interp:.1f} ms | "
            f"{_ratio(hand, interp)} | |"
        )
    lines += [
        "",
        "CPU per step in ms (median run), hand-written / interpreter:",
        "",
        "| scenario | process (worker + client) | ratio | workflow code | ratio "
        "| dev server | longest activation (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in cpu:
        cells = []
        for what in ("worker_cpu", "workflow_cpu", "server_cpu"):
            hand, interp = (results.median(s.key, side, what) / s.steps * 1000 for side in SIDES)
            cells.append(f"{hand:.2f} / {interp:.2f}")
            if what != "server_cpu":
                cells.append(f"{interp / hand:.2f}")
        hand, interp = (results.median(s.key, side, "longest_activation") * 1000 for side in SIDES)
        cells.append(f"{hand:.0f} / {interp:.0f}")
        lines.append(f"| {s.label} | " + " | ".join(cells) + " |")
    return lines


def _sandbox_table(modes: dict[str, Results], timed: Sequence[Scenario]) -> list[str]:
    """The same runs in each mode of `MODES`: wall ratios, then workflow code per step."""
    lines = [
        "| scenario | "
        + " | ".join(f"wall ratio {mode}" for mode in modes)
        + " | "
        + " | ".join(f"workflow code ms/step, hand / interp, {mode} | ratio" for mode in modes)
        + " |",
        "|---|" + "---:|" * (3 * len(modes)),
    ]
    for s in timed:
        cells = []
        for results in modes.values():
            hand, interp = (results.median(s.key, side) for side in SIDES)
            cells.append(_ratio(hand, interp))
        for results in modes.values():
            hand, interp = (
                results.median(s.key, side, "workflow_cpu") / s.steps * 1000 for side in SIDES
            )
            cells += [f"{hand:.2f} / {interp:.2f}", f"{interp / hand:.2f}"]
        lines.append(f"| {s.label} | " + " | ".join(cells) + " |")
    return lines


def _where(key: tuple[str, int, str]) -> str:
    file, line, func = key
    for marker in ("/site-packages/", os.getcwd() + os.sep):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{file}:{line}:{func}"


async def _profile(client: Client, scenario: Scenario) -> list[str]:
    """cProfile (thread CPU) of the workflow thread, both sides as deployed, one run each."""
    lines = [f"### profile of {scenario.label} (workflow thread CPU, cProfile, as deployed)"]
    stats: dict[str, dict[tuple[str, int, str], tuple[Any, ...]]] = {}
    for side in SIDES:
        sandboxed = MODES["as deployed"][side]
        profile = await harness.profile_run(client, scenario, side, sandboxed=sandboxed)
        loaded = pstats.Stats(profile, stream=io.StringIO())
        stats[side] = loaded.stats  # type: ignore[attr-defined]
        total = loaded.total_tt  # type: ignore[attr-defined]
        lines.append(
            f"- {side}: {total:.2f} s CPU in the workflow thread "
            f"({total / scenario.steps * 1000:.2f} ms/step)"
        )
    interp, hand = stats["interpreter"], stats["handwritten"]
    per_step = 1000 / scenario.steps
    lines.append("  top functions by own time, interpreter (hand-written), ms/step:")
    by_own = sorted(interp.items(), key=lambda kv: kv[1][2], reverse=True)
    for key, (_, calls, tottime, _cum, _) in by_own[:12]:
        other = hand.get(key, (0, 0, 0.0))[2]
        lines.append(
            f"    {_where(key)}  calls {calls}: {tottime * per_step:.3f} ({other * per_step:.3f})"
        )
    own = [
        (key, value)
        for key, value in interp.items()
        if "/interpreter/" in key[0] or "/dsl/" in key[0]
    ]
    own.sort(key=lambda kv: kv[1][3], reverse=True)
    lines.append("  top interpreter/dsl functions by cumulative time, ms/step:")
    for key, (_, calls, tottime, cumtime, _) in own[:12]:
        lines.append(
            f"    {_where(key)}  calls {calls}: own {tottime * per_step:.3f}, "
            f"cumulative {cumtime * per_step:.3f}"
        )
    return lines


async def _foreach(client: Client, items: int) -> float:
    """Wall time of one foreach run over `items` items, checked for every output."""
    print(f"foreach over {items} items", flush=True)
    async with harness.worker(client) as (task_queue, _stats):
        began = time.perf_counter()
        workflow_type, args = scenarios.foreach(items)
        handle = await client.start_workflow(
            workflow_type,
            args=list(args),
            id=f"foreach-{items}-{uuid4()}",
            task_queue=task_queue,
        )
        result = await harness.wait_result(handle)
        seconds = time.perf_counter() - began
    if len(result["each"]) != items or result["each"][-1] != {"i": items - 1}:
        raise AssertionError(f"foreach-{items}: wrong outputs {str(result)[:200]}")
    return seconds


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="1 repetition, chain 50, fan-out 200, DAG 200"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile every scenario, not only the slow ones"
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        metavar="N",
        help="repetitions per measurement (default 3, quick 1)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.repetitions:
        sizes = dataclasses.replace(sizes, repetitions=args.repetitions)
    began = time.perf_counter()
    code = _code_hash()
    for line in _machine():
        print(line)
    print(
        f"settings: {sizes}, one worker per measurement with "
        f"max_concurrent_activities={harness.MAX_CONCURRENT_ACTIVITIES}, "
        f"max_concurrent_workflow_tasks={harness.MAX_CONCURRENT_WORKFLOW_TASKS}",
        flush=True,
    )
    timed = [
        scenarios.chain(sizes.chain),
        scenarios.fanout(sizes.fanout),
        scenarios.dag(sizes.dag_layers, sizes.dag_width),
    ]
    small = [scenarios.chain(sizes.small), scenarios.fanout(sizes.small)]
    sample = scenarios.sample()
    results = Results()

    env = await start_local_env()
    try:
        client = env.client
        print("warm-up (not measured)", flush=True)
        for side in SIDES:
            await harness.measure_run(client, small[0], side)
        for scenario in [*small, *timed]:
            await _timed(client, scenario, sizes.repetitions, results)
        modes = {"sandboxed": results}
        for mode in ("unsandboxed", "as deployed"):
            print(f"the same {mode} ({MODES[mode]})", flush=True)
            modes[mode] = Results()
            for scenario in timed:
                await _timed(client, scenario, sizes.repetitions, modes[mode], mode=mode)
        await _starts(client, sample, sizes, results)
        foreach_seconds = await _foreach(client, sizes.foreach)
        print("run history on vs off", flush=True)
        history = await history_cost(client, timed[0], sizes.repetitions)
        print("large runs (interpreter only)", flush=True)
        large = await large_runs(
            client, sizes.large_chain, sizes.large_fanout, sizes.large_foreach, sizes.large_loop
        )

        cpu = [small[0], timed[0], small[1], timed[1], timed[2]]
        table = _table(results, timed, cpu)
        slow = [
            s
            for s in timed
            if args.profile
            or results.median(s.key, "interpreter") / results.median(s.key, "handwritten")
            > PROFILE_THRESHOLD
        ]
        profiles = []
        for scenario in slow:
            profiles += await _profile(client, scenario)
    finally:
        await env.shutdown()

    print()
    print(f"## results: median of {sizes.repetitions} repetition(s)")
    print()
    for line in [*table, *(["", *profiles] if profiles else [])]:
        print(line)
    print()
    print(
        "Sandboxed, unsandboxed, and as deployed: the interpreter unsandboxed, the "
        "hand-written workflow sandboxed (interp ÷ hand in each mode):"
    )
    print()
    for line in _sandbox_table(modes, timed):
        print(line)
    print()
    for line in large_table(large):
        print(line)
    print()
    print(
        f"foreach over {sizes.foreach} items (interpreter only, batched through child "
        f"workflows of 200): {foreach_seconds:.1f} s, one run"
    )
    print(
        f"{timed[0].label}, run history off {history.off:.2f} s, on {history.on:.2f} s: "
        f"on/off {history.on / history.off:.3f} (target <= 1.10); the history was complete "
        f"{history.lag:.2f} s after the run ended"
    )
    validation = validation_seconds(sizes.validate)
    print(
        f"load + validate a generated {sizes.validate}-step definition: "
        + ", ".join(f"{kind} {seconds:.2f} s" for kind, seconds in validation.items())
        + " (target < 0.5 s on a quiet machine)"
    )
    tenfold = validation_seconds(sizes.validate * 10, repetitions=1, kinds=("yaml",))
    print(
        f"load + validate {sizes.validate * 10} steps: yaml {tenfold['yaml']:.2f} s, "
        f"{tenfold['yaml'] / validation['yaml']:.1f} times the {sizes.validate}-step time "
        "(target <= 12 times)"
    )
    print()
    print(
        "process CPU = time.process_time() over the run (worker and client share the process); "
        "workflow code = thread CPU of the workflow activations and of creating the sandboxed "
        "instance; dev server = its process (psutil)."
    )
    if _code_hash() != code:
        print("WARNING: interpreter/ or dsl/ changed on disk during the run; rerun.")
    leftover = harness.server_processes()
    print(_load())
    print(f"leftover temporal processes: {[p.pid for p in leftover] or 'none'}")
    print(f"total benchmark time: {time.perf_counter() - began:.0f} s")
    return 1 if leftover else 0


async def _main_stopping_on_sigterm() -> int:
    """SIGTERM cancels like Ctrl-C does, so the dev server is always shut down."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await main()
    except asyncio.CancelledError:
        print("interrupted; the dev server was shut down", file=sys.stderr)
        return 128 + signal.SIGTERM


if __name__ == "__main__":
    sys.exit(asyncio.run(_main_stopping_on_sigterm()))
