"""No run hangs on payload size: the claim-check codec of `interpreter.payloads`.

Unit tests of the codec, the stores and the configuration, then real runs on the dev
server: large values complete through a store (files, PostgreSQL) without any large
payload in the history, and without a store they fail their step at once with
`PayloadTooLarge` instead of leaving the run RUNNING for ever.
"""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.converter import ActivitySerializationContext, WorkflowSerializationContext
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from dsl.bundle import canonical_json
from dsl.checked import forget_checked
from dsl.errors import InputError, ServiceError
from interpreter.client.submit import prepare_run, start_run
from interpreter.payloads import (
    CLAIM_CHECK_ENCODING,
    DEFAULT_THRESHOLD,
    PAYLOADS_TABLE_DDL,
    TOO_LARGE_ENCODING,
    ClaimCheckCodec,
    FileStore,
    OversizedValue,
    PayloadError,
    PayloadLimitInterceptor,
    PayloadStore,
    PayloadStoreUnavailable,
    PostgresStore,
    TdslPayloadConverter,
    check_key,
    data_converter,
    describe_store,
    payload_codec,
    payload_store_from_env,
    threshold_from_env,
    with_payload_codec,
    worker_client,
)
from interpreter.worker import WORKFLOWS, workflow_runner
from tests.record_histories import replay_id
from tests.support.runs import interpreter_worker, start, statuses

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
RUN_TIMEOUT = 30.0
"""No test may wait longer than this for a run: a hanging run fails the test."""


@activity.defn(name="test.blob")
async def blob(params: dict[str, Any]) -> dict[str, Any]:
    """A large output from a small input: `bytes` characters."""
    return {"data": "x" * int(params["bytes"])}


def json_payload(value: Any) -> Payload:
    return TdslPayloadConverter().to_payloads([value])[0]


# --------------------------------------------------------------------------- codec


async def test_small_payloads_pass_through_untouched(tmp_path: Path) -> None:
    codec = ClaimCheckCodec(FileStore(tmp_path / "p"))
    small = [json_payload({"a": 1}), json_payload("x" * (DEFAULT_THRESHOLD - 100))]
    assert await codec.encode(small) == small
    assert await codec.decode(small) == small
    assert not (tmp_path / "p").exists()  # nothing was stored


async def test_large_payload_round_trip_through_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "payloads")
    codec = ClaimCheckCodec(store)
    original = json_payload({"blob": "y" * MIB})
    [reference] = await codec.encode([original])
    assert reference.metadata["encoding"] == CLAIM_CHECK_ENCODING
    assert reference.metadata["store"] == b"file"
    assert reference.ByteSize() < 300
    info = json.loads(reference.data)
    assert info["size"] == original.ByteSize()
    [decoded] = await codec.decode([reference])
    assert decoded == original

    path = store.directory / info["key"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert [reference] == await codec.encode([original])  # idempotent: same key, one file
    assert [p.name for p in store.directory.iterdir()] == [info["key"]]


async def test_threshold_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TDSL_PAYLOAD_THRESHOLD", "1000")
    assert threshold_from_env() == 1000
    codec = ClaimCheckCodec(FileStore(tmp_path))
    [reference] = await codec.encode([json_payload("z" * 2000)])
    assert reference.metadata["encoding"] == CLAIM_CHECK_ENCODING
    monkeypatch.setenv("TDSL_PAYLOAD_THRESHOLD", "lots")
    with pytest.raises(InputError, match="TDSL_PAYLOAD_THRESHOLD"):
        threshold_from_env()


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "A" * 64, "a" * 63, "a" * 65, "", "/" + "a" * 63, "a" * 64 + "\n"]
)
def test_keys_are_strict_content_addresses(key: str) -> None:
    with pytest.raises(PayloadError, match="invalid payload key"):
        check_key(key)


async def test_forged_and_corrupt_references_are_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "p")
    codec = ClaimCheckCodec(store)
    forged = Payload(
        metadata={"encoding": CLAIM_CHECK_ENCODING, "store": b"file"},
        data=json.dumps({"key": "../../secret", "size": 1}).encode(),
    )
    with pytest.raises(PayloadError, match="invalid payload key"):
        await codec.decode([forged])
    with pytest.raises(PayloadError, match="invalid payload key"):
        await store.get("../secret")

    [reference] = await codec.encode([json_payload("q" * MIB)])
    key = json.loads(reference.data)["key"]
    (store.directory / key).write_bytes(b"something else")
    with pytest.raises(PayloadError, match="corrupt"):
        await codec.decode([reference])
    (store.directory / key).unlink()
    with pytest.raises(PayloadError, match="is not in the file store"):
        await codec.decode([reference])


async def test_a_reference_needs_a_store_of_its_kind(tmp_path: Path) -> None:
    reference = Payload(
        metadata={"encoding": CLAIM_CHECK_ENCODING, "store": b"postgres"},
        data=json.dumps({"key": "0" * 64, "size": 3 * MIB}).encode(),
    )
    for codec in (ClaimCheckCodec(None), ClaimCheckCodec(FileStore(tmp_path))):
        with pytest.raises(PayloadError) as caught:
            await codec.decode([reference])
        assert str(caught.value) == (
            "this value is stored outside Temporal in postgres; "
            "set DATABASE_URL (or TDSL_PAYLOAD_STORE=postgres) to read it"
        )


async def test_without_a_store_a_worker_marks_what_it_cannot_send() -> None:
    codec = ClaimCheckCodec(None, worker=True)
    big = json_payload("b" * (3 * MIB))
    small = json_payload("fine")
    workflow_side = codec.with_context(WorkflowSerializationContext("default", "wf-1"))
    [marker, kept] = await workflow_side.encode([big, small])
    assert kept == small
    assert marker.metadata["encoding"] == TOO_LARGE_ENCODING
    assert marker.ByteSize() < 1000

    with pytest.raises(ApplicationError) as caught:
        await workflow_side.decode([marker])
    error = caught.value
    assert error.type == "PayloadTooLarge"
    assert error.non_retryable
    assert error.message == (
        f"a payload of workflow 'wf-1' is {big.ByteSize()} bytes, over Temporal's 2 MiB "
        "payload limit, and no payload store is on "
        "(TDSL_PAYLOAD_STORE=postgres with DATABASE_URL, or file:DIR)"
    )

    # An activity's input: the marker survives decoding as an OversizedValue, which
    # the worker's interceptor turns into the activity's (non-retryable) failure.
    context = ActivitySerializationContext(
        namespace="default",
        workflow_id="wf-1",
        workflow_type="DslWorkflow",
        activity_type="echo",
        activity_id="e",
        activity_task_queue="q",
        is_local=False,
    )
    [kept_marker] = await codec.with_context(context).decode([marker])
    [value] = TdslPayloadConverter().from_payloads([kept_marker], [dict])
    assert isinstance(value, OversizedValue)
    assert value.error().type == "PayloadTooLarge"


async def test_a_plain_client_refuses_to_send_what_it_cannot_offload() -> None:
    codec = ClaimCheckCodec(None).with_context(WorkflowSerializationContext("default", "wf-2"))
    with pytest.raises(PayloadError, match=r"is \d+ bytes, over Temporal's 2 MiB payload limit"):
        await codec.encode([json_payload("c" * (3 * MIB))])


async def test_values_over_the_offload_cap_are_not_offloaded(tmp_path: Path) -> None:
    codec = ClaimCheckCodec(
        FileStore(tmp_path / "p"), threshold=100, limit=1000, max_offload=2000, worker=True
    )
    [reference] = await codec.encode([json_payload("d" * 1500)])
    assert reference.metadata["encoding"] == CLAIM_CHECK_ENCODING
    [marker] = await codec.encode([json_payload("d" * 3000)])
    assert marker.metadata["encoding"] == TOO_LARGE_ENCODING
    with pytest.raises(ApplicationError, match="tdsl keeps in its payload store"):
        await codec.decode([marker])


def test_converter_and_codec_are_attached_to_clients() -> None:
    converter = data_converter(None)
    assert isinstance(converter.payload_codec, ClaimCheckCodec)
    assert converter.payload_converter_class is TdslPayloadConverter
    # the marker converter does not change how ordinary values are encoded
    assert (
        json_payload({"a": [1, "b"]})
        == converter.payload_converter.to_payloads([{"a": [1, "b"]}])[0]
    )


# --------------------------------------------------------------------------- configuration


def test_store_from_env(tmp_path: Path) -> None:
    assert payload_store_from_env({}, cwd=tmp_path) is None
    assert payload_store_from_env({"TDSL_PAYLOAD_STORE": "off", "DATABASE_URL": "x"}) is None
    database = payload_store_from_env({"DATABASE_URL": "postgresql://db/x"}, cwd=tmp_path)
    assert isinstance(database, PostgresStore)
    assert database.url == "postgresql://db/x"
    explicit = payload_store_from_env(
        {"TDSL_PAYLOAD_STORE": "postgres", "DATABASE_URL": "postgresql://db/y"}
    )
    assert isinstance(explicit, PostgresStore)
    files = payload_store_from_env(
        {"TDSL_PAYLOAD_STORE": "file:blobs", "DATABASE_URL": "postgresql://db/x"}, cwd=tmp_path
    )
    assert isinstance(files, FileStore)
    assert files.directory == tmp_path / "blobs"
    assert describe_store(files) == f"file:{tmp_path / 'blobs'}"

    (tmp_path / ".tdsl" / "payloads").mkdir(parents=True)  # what `tdsl dev` leaves
    dev = payload_store_from_env({}, cwd=tmp_path)
    assert isinstance(dev, FileStore)
    assert dev.directory == tmp_path / ".tdsl" / "payloads"

    with pytest.raises(InputError, match="needs DATABASE_URL"):
        payload_store_from_env({"TDSL_PAYLOAD_STORE": "postgres"})
    for bad in ("s3", "file:", "FILE:/x"):
        with pytest.raises(InputError, match="expected off, postgres or file:DIR"):
            payload_store_from_env({"TDSL_PAYLOAD_STORE": bad})


def test_stores_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(FileStore(tmp_path), PayloadStore)
    assert isinstance(PostgresStore("postgresql://nowhere/x"), PayloadStore)


def test_migration_creates_the_table_the_store_creates() -> None:
    sql = (ROOT / "schema" / "migrations" / "0002_payloads.sql").read_text()
    statements = [
        " ".join(s.split())
        for s in "\n".join(
            line for line in sql.splitlines() if not line.lstrip().startswith("--")
        ).split(";")
        if s.strip()
    ]
    assert statements == [" ".join(PAYLOADS_TABLE_DDL.split())]


async def test_recorded_histories_replay_through_the_codec(tmp_path: Path) -> None:
    """Old payloads pass through untouched and the worker's interceptor changes nothing."""
    converter = data_converter(FileStore(tmp_path), worker=True)
    assert isinstance(converter.payload_codec, ClaimCheckCodec)
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        workflow_runner=workflow_runner(),
        data_converter=converter,
        interceptors=[PayloadLimitInterceptor(converter.payload_codec)],
    )
    histories = sorted((ROOT / "tests" / "histories").glob("*.json"))
    assert histories
    for path in histories:
        history = WorkflowHistory.from_json(replay_id(path.stem), path.read_text())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
        assert result.replay_failure is None
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
async def schema_url(postgres: str) -> AsyncIterator[str]:
    from tests.interpreter.history.test_store import fresh_schema

    async with fresh_schema(postgres) as url:
        yield url


@pytest.mark.integration
async def test_postgres_store_creates_its_table_and_is_idempotent(schema_url: str) -> None:
    store = PostgresStore(schema_url)
    codec = ClaimCheckCodec(store)
    try:
        original = json_payload({"blob": "p" * MIB})
        [reference] = await codec.encode([original])  # no table yet: created on first write
        assert reference.metadata["store"] == b"postgres"
        assert [reference] == await codec.encode([original])
        assert await codec.decode([reference]) == [original]
        async with store._connection() as connection:
            rows = await connection.fetch("select key, size from tdsl_payloads")
        assert [(r["key"], r["size"]) for r in rows] == [
            (json.loads(reference.data)["key"], len(original.SerializeToString()))
        ]
        with pytest.raises(PayloadError, match="is not in the PostgreSQL payload store"):
            await store.get("0" * 64)
    finally:
        await store.close()


@pytest.mark.integration
def test_postgres_store_works_across_event_loops(schema_url: str) -> None:
    """The CLI runs `asyncio.run` more than once per process with the same client."""
    store = PostgresStore(schema_url)
    codec = ClaimCheckCodec(store)
    original = json_payload("r" * MIB)
    [reference] = asyncio.run(codec.encode([original]))

    async def read_and_close() -> list[Payload]:
        try:
            return await codec.decode([reference])
        finally:
            await store.close()

    assert asyncio.run(read_and_close()) == [original]


# --------------------------------------------------------------------------- real runs


def _payloads(message: Message) -> Iterator[Payload]:
    """Every Payload inside a proto message (history events nest them deeply)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = list(value.values())
        elif isinstance(value, Message):
            values = [value]
        else:  # a repeated field
            values = list(value)
        for item in values:
            if isinstance(item, Message):
                yield from _payloads(item)


async def _history_payloads(handle: WorkflowHandle[Any, Any]) -> list[Payload]:
    history = await handle.fetch_history()
    return [p for event in history.events for p in _payloads(event)]


async def _activity_attempts(handle: WorkflowHandle[Any, Any]) -> list[int]:
    history = await handle.fetch_history()
    return [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]


@pytest.fixture(params=["file", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PayloadStore]:
    if request.param == "file":
        yield FileStore(tmp_path / "payloads")
        return
    url: str = request.getfixturevalue("postgres")
    opened = PostgresStore(url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def offloading(
    client: Client, task_queue: str, store: PayloadStore
) -> AsyncIterator[tuple[Client, str]]:
    """A client with the codec and the store, and a production worker using both."""
    with_codec = with_payload_codec(client, store)
    async with interpreter_worker(
        with_codec, task_queue, activity_modules=["tests.interpreter.test_payloads"]
    ):
        yield with_codec, task_queue


@pytest.fixture
async def no_store(client: Client, task_queue: str) -> AsyncIterator[tuple[Client, str]]:
    """Offload off: a client and a worker whose codec has no store."""
    with_codec = with_payload_codec(client, None)
    async with interpreter_worker(
        with_codec, task_queue, activity_modules=["tests.interpreter.test_payloads"]
    ):
        yield with_codec, task_queue


def _assert_nothing_large_in(payloads: list[Payload]) -> None:
    largest = max(p.ByteSize() for p in payloads)
    assert largest <= DEFAULT_THRESHOLD, f"a {largest}-byte payload reached the history"
    assert any(p.metadata.get("encoding") == CLAIM_CHECK_ENCODING for p in payloads)


@pytest.mark.integration
async def test_a_5_mb_step_output_completes(offloading: tuple[Client, str]) -> None:
    client, task_queue = offloading
    size = 5_000_000
    async with asyncio.timeout(RUN_TIMEOUT):
        handle = await start(
            client,
            task_queue,
            "name: big-output\nsteps:\n"
            f"  - {{id: big, action: test.blob, parameters: {{bytes: {size}}}}}\n"
            "  - {id: again, action: echo, dependencies: [big],"
            " parameters: {copy: '${{ steps.big.output.data }}'}}\n",
        )
        output = await handle.result()
    assert output["big"]["data"] == "x" * size
    assert output["again"]["copy"] == "x" * size
    assert await statuses(handle) == {"big": "completed", "again": "completed"}
    _assert_nothing_large_in(await _history_payloads(handle))


@pytest.mark.integration
async def test_a_3_mb_run_input_completes(offloading: tuple[Client, str]) -> None:
    client, task_queue = offloading
    value = "i" * 3_000_000
    async with asyncio.timeout(RUN_TIMEOUT):
        handle = await start(
            client,
            task_queue,
            "name: big-input\nsteps:\n"
            "  - {id: e, action: echo, parameters: {blob: '${{ input.blob }}'}}\n",
            {"blob": value},
        )
        output = await handle.result()
    assert output == {"e": {"blob": value}}
    _assert_nothing_large_in(await _history_payloads(handle))


def _huge_definition(steps: int) -> dict[str, Any]:
    """*steps* set steps in 20 layers, each reading one of the layer before."""
    width = steps // 20
    pad = "p" * 60

    def step(i: int) -> dict[str, Any]:
        body: dict[str, Any] = {"id": f"s{i:05d}", "type": "set", "values": {"n": i, "pad": pad}}
        if i >= width:
            body["dependencies"] = [f"s{i - width:05d}"]
        return body

    return {
        "name": "huge",
        "steps": [step(i) for i in range(steps)],
        "output": {"last": "${{ steps.s" + f"{steps - 1:05d}" + ".output.n }}"},
    }


@pytest.mark.integration
async def test_a_20000_step_definition_over_2_mb_runs_by_type(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    """`tdsl run FILE` of a definition larger than Temporal's payload limit: it goes to
    the store by hash, the run's input is the user's input, and a replay on a worker
    that never saw it (nothing remembered) reads it from the store again."""
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(_huge_definition(20_000)))
    run_input, _ = prepare_run(path)
    assert len(canonical_json(run_input.definition)) > 2 * MIB
    store = FileStore(tmp_path / "payloads")
    with_codec = with_payload_codec(client, store)
    async with interpreter_worker(with_codec, task_queue):
        async with asyncio.timeout(120):
            handle = await start_run(with_codec, run_input, task_queue=task_queue)
            assert await handle.result() == {"last": 19_999}
    assert (await handle.describe()).workflow_type == "huge"
    events = [event async for event in handle.fetch_history_events()]
    assert events[0].ByteSize() < 10_000
    _assert_nothing_large_in(await _history_payloads(handle))
    forget_checked()
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        workflow_runner=workflow_runner(sandboxed=True),
        data_converter=with_codec.data_converter,
        debug_mode=True,  # what is checked is determinism, not how long it takes here
    )
    await replayer.replay_workflow(await handle.fetch_history())


async def _fails_fast(
    client: Client, task_queue: str, text: str, input: Any = None, *, directory: Path | None = None
) -> tuple[WorkflowHandle[Any, Any], ApplicationError]:
    """Start a run, insist it FAILS (not hangs) within seconds; its innermost error."""
    options = {"directory": directory} if directory is not None else {}
    began = time.monotonic()
    async with asyncio.timeout(RUN_TIMEOUT):
        handle = await start(client, task_queue, text, input, **options)
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    assert time.monotonic() - began < 15, "the failure took too long to show"
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "PayloadTooLarge", cause
    assert "bytes, over Temporal's 2 MiB payload limit, and no payload store is on" in (
        cause.message
    )
    return handle, cause


@pytest.mark.integration
@pytest.mark.parametrize("local", [False, True], ids=["activity", "local-activity"])
async def test_without_a_store_oversized_parameters_fail_the_step(
    no_store: tuple[Client, str], local: bool
) -> None:
    client, task_queue = no_store
    handle, error = await _fails_fast(
        client,
        task_queue,
        "name: big-params\nsteps:\n"
        f"  - {{id: e, action: echo, local: {str(local).lower()}, parameters:"
        " {a: '${{ input.blob }}', b: '${{ input.blob }}', c: '${{ input.blob }}'}}\n",
        {"blob": "m" * 1_000_000},
    )
    assert error.message.startswith("step 'e' failed: the input of activity 'echo'")
    assert await statuses(handle) == {"e": "failed"}
    if not local:  # a local activity's attempts are not history events
        assert await _activity_attempts(handle) == [1]  # non-retryable: no second attempt


@pytest.mark.integration
async def test_without_a_store_an_oversized_result_fails_the_step(
    no_store: tuple[Client, str],
) -> None:
    client, task_queue = no_store
    handle, error = await _fails_fast(
        client,
        task_queue,
        "name: big-result\nsteps:\n"
        "  - {id: big, action: test.blob, parameters: {bytes: 3000000}}\n"
        "  - {id: after, action: echo, dependencies: [big]}\n",
    )
    assert "the result of activity 'test.blob' (activity id 'big') is" in error.message
    assert await statuses(handle) == {"big": "failed", "after": "cancelled"}
    assert await _activity_attempts(handle) == [1]


@pytest.mark.integration
async def test_without_a_store_an_oversized_child_input_fails_the_step(
    no_store: tuple[Client, str], tmp_path: Path
) -> None:
    client, task_queue = no_store
    (tmp_path / "child.yaml").write_text("name: child\nsteps: [{id: c, action: echo}]\n")
    handle, _ = await _fails_fast(
        client,
        task_queue,
        "name: parent\nsteps:\n"
        "  - {id: s, type: subworkflow, workflow: child,"
        " input: {a: '${{ input.blob }}', b: '${{ input.blob }}', c: '${{ input.blob }}'}}\n",
        {"blob": "k" * 1_000_000},
        directory=tmp_path,
    )
    assert await statuses(handle) == {"s": "failed"}
    child = client.get_workflow_handle(f"{handle.id}/s")
    assert (await child.describe()).status == WorkflowExecutionStatus.FAILED


@pytest.mark.integration
async def test_without_a_store_an_oversized_run_output_fails_the_run(
    no_store: tuple[Client, str],
) -> None:
    client, task_queue = no_store
    _, error = await _fails_fast(
        client,
        task_queue,
        "name: big-run-output\nsteps:\n"
        "  - {id: a, action: echo, parameters: {blob: '${{ input.blob }}'}}\n"
        "  - {id: b, action: echo, parameters: {blob: '${{ input.blob }}'}}\n",
        {"blob": "o" * 1_200_000},
    )
    assert error.message.startswith("the output of workflow ")


@pytest.mark.integration
async def test_without_a_store_a_client_refuses_an_oversized_input(
    no_store: tuple[Client, str],
) -> None:
    client, task_queue = no_store
    with pytest.raises(PayloadError, match="over Temporal's 2 MiB payload limit"):
        await start(client, task_queue, "name: x\nsteps: [{id: e, action: echo}]\n", "n" * 3 * MIB)


@pytest.mark.integration
async def test_a_worker_polls_with_its_codec_in_worker_mode(client: Client, tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    polling = worker_client(with_payload_codec(client, store))
    codec = payload_codec(polling)
    assert codec is not None
    assert codec.worker
    assert codec.store is store


@pytest.mark.integration
async def test_without_a_store_an_oversized_continuation_fails_the_run(
    no_store: tuple[Client, str],
) -> None:
    client, task_queue = no_store
    steps = "".join(
        f"  - {{id: s{i}, action: echo, parameters: {{blob: '${{{{ input.blob }}}}'}}"
        + (f", dependencies: [s{i - 1}]" if i else "")
        + "}\n"
        for i in range(8)
    )
    handle, error = await _fails_fast(
        client,
        task_queue,
        "name: big-carry\nhistory_limit: 20\noutput: {n: 1}\nsteps:\n"
        "  - {id: book, action: echo, compensate: {action: echo}}\n" + steps,
        {"blob": "c" * 600_000},
    )
    # Failed by the run that was to continue (compensated), not left to its successor,
    # whose first workflow task would fail for ever on the "too large" marker.
    assert "carries into its continued run is " in error.message, error.message
    status = await handle.query("status")
    assert status["status"] == "FAILED"
    assert status["steps"]["book.compensate"]["status"] == "completed"
    assert status["continued"] >= 1  # smaller continuations went through first


async def test_an_unreachable_postgres_store_is_a_service_error() -> None:
    """Like an unreachable Temporal or registry: the CLI says so in one line, `tdsl serve`
    answers 503; still a `PayloadError`, so a worker's step retries until it is back."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    store = PostgresStore(f"postgresql://nobody@127.0.0.1:{port}/none")
    for attempt in (store.put(check_key("0" * 64), b"x"), store.get("0" * 64)):
        with pytest.raises(
            PayloadStoreUnavailable, match="payload store PostgreSQL unreachable"
        ) as caught:
            await attempt
        assert isinstance(caught.value, ServiceError)
        assert isinstance(caught.value, PayloadError)
