"""Writing through MessageStore: positions, optimistic concurrency, idempotent ids, atomic batches."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import ConcurrencyError, DuplicateMessageError, StoreError
from messagedb_agent.store.message import NewMessage
from messagedb_agent.store.stream_name import InvalidStreamName


def test_write_message_returns_consecutive_positions(store: MessageStore, stream: str) -> None:
    positions = [store.write_message(None, stream, "Counted", {"n": n}) for n in range(3)]
    assert positions == [0, 1, 2]
    assert store.stream_version(stream) == 2
    assert [m.data["n"] for m in store.read_stream(stream)] == [0, 1, 2]


def test_write_message_keeps_type_id_and_metadata(store: MessageStore, stream: str) -> None:
    message_id = str(uuid.uuid4())
    metadata = {"correlationStreamName": stream, "userId": "u1"}
    store.write_message(message_id, stream, "Greeted", {"name": "Ada"}, metadata)
    [message] = store.read_stream(stream)
    assert (message.id, message.stream_name, message.type, message.position) == (
        message_id,
        stream,
        "Greeted",
        0,
    )
    assert message.data == {"name": "Ada"}
    assert message.metadata == metadata


def test_metadata_left_out_reads_back_as_none(store: MessageStore, stream: str) -> None:
    store.write_message(None, stream, "Bare", {})
    [message] = store.read_stream(stream)
    assert message.metadata is None
    assert message.data == {}


def test_expected_version_matching_the_stream_writes(store: MessageStore, stream: str) -> None:
    assert store.write_message(None, stream, "First", {}, expected_version=-1) == 0
    assert store.write_message(None, stream, "Second", {}, expected_version=0) == 1
    assert store.write_message(None, stream, "Third", {}, expected_version=1) == 2


@pytest.mark.parametrize(
    ("existing", "expected", "actual"),
    [(0, 5, -1), (1, -1, 0), (3, 1, 2), (2, 2, 1)],
    ids=["5-on-empty", "minus1-on-nonempty", "behind", "ahead"],
)
def test_wrong_expected_version_raises_concurrency_error_with_both_versions(
    store: MessageStore, stream: str, existing: int, expected: int, actual: int
) -> None:
    for _ in range(existing):
        store.write_message(None, stream, "Filler", {})
    with pytest.raises(ConcurrencyError) as caught:
        store.write_message(None, stream, "Late", {}, expected_version=expected)
    error = caught.value
    assert (error.stream_name, error.expected_version, error.actual_version) == (
        stream,
        expected,
        actual,
    )
    assert str(error) == f"stream {stream} is at version {actual}, expected {expected}"
    assert store.stream_version(stream) == (None if existing == 0 else existing - 1)


def test_same_id_written_twice_raises_duplicate_and_keeps_one_message(
    store: MessageStore, stream: str
) -> None:
    message_id = str(uuid.uuid4())
    store.write_message(message_id, stream, "Once", {"n": 1})
    with pytest.raises(DuplicateMessageError) as caught:
        store.write_message(message_id, stream, "Once", {"n": 1})
    assert caught.value.message_id == message_id
    assert caught.value.stream_name == stream
    assert [m.id for m in store.read_stream(stream)] == [message_id]


def test_same_id_in_another_stream_is_still_a_duplicate(store: MessageStore, stream: str) -> None:
    message_id = str(uuid.uuid4())
    other = f"thread-{uuid.uuid4()}"
    store.write_message(message_id, stream, "Once", {})
    with pytest.raises(DuplicateMessageError):
        store.write_message(message_id, other, "Once", {})
    assert store.stream_version(other) is None


def test_write_messages_appends_a_batch_at_consecutive_positions(
    store: MessageStore, stream: str
) -> None:
    store.write_message(None, stream, "Before", {})
    last = store.write_messages(stream, [NewMessage("Batch", {"n": n}) for n in range(4)])
    assert last == 4
    messages = store.read_stream(stream)
    assert [m.position for m in messages] == [0, 1, 2, 3, 4]
    assert [m.data.get("n") for m in messages[1:]] == [0, 1, 2, 3]


def test_write_messages_with_a_duplicate_id_writes_nothing(
    store: MessageStore, stream: str
) -> None:
    taken = str(uuid.uuid4())
    other = f"thread-{uuid.uuid4()}"
    store.write_message(taken, other, "Taken", {})
    batch = [
        NewMessage("One", {}, id=str(uuid.uuid4())),
        NewMessage("Two", {}, id=taken),
        NewMessage("Three", {}),
    ]
    with pytest.raises(DuplicateMessageError) as caught:
        store.write_messages(stream, batch)
    assert caught.value.message_id == taken
    assert store.read_stream(stream) == []
    assert store.stream_version(stream) is None


def test_write_messages_repeated_after_success_is_rejected_whole(
    store: MessageStore, stream: str
) -> None:
    batch = [NewMessage("Step", {"n": n}, id=str(uuid.uuid4())) for n in range(3)]
    store.write_messages(stream, batch)
    with pytest.raises(DuplicateMessageError):
        store.write_messages(stream, batch)
    assert len(store.read_stream(stream)) == 3


def test_write_messages_checks_expected_version_of_each_message(
    store: MessageStore, stream: str
) -> None:
    store.write_message(None, stream, "First", {})
    last = store.write_messages(
        stream, [NewMessage("A", {}), NewMessage("B", {}), NewMessage("C", {})], expected_version=0
    )
    assert last == 3
    with pytest.raises(ConcurrencyError) as caught:
        store.write_messages(stream, [NewMessage("D", {}), NewMessage("E", {})], expected_version=2)
    assert (caught.value.expected_version, caught.value.actual_version) == (2, 3)
    assert store.stream_version(stream) == 3


def test_write_messages_on_empty_stream_with_expected_minus_one(
    store: MessageStore, stream: str
) -> None:
    assert store.write_messages(stream, [NewMessage("A", {}), NewMessage("B", {})], -1) == 1
    with pytest.raises(ConcurrencyError):
        store.write_messages(stream, [NewMessage("C", {})], -1)
    assert [m.type for m in store.read_stream(stream)] == ["A", "B"]


# 3 is written as one row of calls, 12 through `unnest`: both must behave alike
BATCH_SIZES = pytest.mark.parametrize("size", [3, 12])


@BATCH_SIZES
def test_a_batch_behind_the_stream_writes_nothing_and_reports_both_versions(
    store: MessageStore, stream: str, size: int
) -> None:
    store.write_messages(stream, [NewMessage("A", {}), NewMessage("B", {})], -1)
    late = [NewMessage("Late", {"n": n}, id=str(uuid.uuid4())) for n in range(size)]
    with pytest.raises(ConcurrencyError) as caught:
        store.write_messages(stream, late, expected_version=0)
    assert (caught.value.expected_version, caught.value.actual_version) == (0, 1)
    assert caught.value.stream_name == stream
    assert [m.type for m in store.read_stream(stream)] == ["A", "B"]
    last = store.write_messages(stream, late, expected_version=1)  # the ids are still free
    assert last == 1 + size
    assert [m.data.get("n") for m in store.read_stream(stream)[2:]] == list(range(size))


@BATCH_SIZES
def test_a_batch_at_the_right_version_with_a_written_id_is_a_duplicate_and_writes_nothing(
    store: MessageStore, stream: str, size: int
) -> None:
    first = store.write_messages(
        stream, [NewMessage("Claim", {}, id=str(uuid.uuid4())), NewMessage("Result", {})], -1
    )
    taken = str(uuid.uuid4())
    store.write_message(taken, f"thread-{uuid.uuid4()}", "Elsewhere", {})
    batch = [NewMessage("Result", {}, id=str(uuid.uuid4())) for _ in range(size - 1)]
    batch.insert(size // 2, NewMessage("Again", {}, id=taken))
    with pytest.raises(DuplicateMessageError) as caught:
        store.write_messages(stream, batch, expected_version=first)
    assert (caught.value.message_id, caught.value.stream_name) == (taken, stream)
    assert store.stream_version(stream) == first


def test_a_batch_that_is_not_durable_is_written_and_leaves_the_connection_as_it_was(
    database_url: str, stream: str
) -> None:
    with MessageStore(database_url, min_size=1, max_size=1) as one:
        last = one.write_messages(stream, [NewMessage("Snapshot", {"n": 1})], -1, durable=False)
        assert last == 0
        assert one.read_stream(stream)[0].data == {"n": 1}
        two = [NewMessage("Snapshot", {"n": 2}), NewMessage("Snapshot", {"n": 3})]
        assert one.write_messages(stream, two, 0, durable=False) == 2
        with pytest.raises(ConcurrencyError):
            one.write_messages(stream, [NewMessage("Snapshot", {})], 1, durable=False)
        with one.connection() as conn:
            row = conn.execute("SHOW synchronous_commit").fetchone()
            assert row is not None
            assert row[0] == "on"
            assert conn.info.transaction_status.name == "IDLE"


def test_write_messages_needs_at_least_one_message(store: MessageStore, stream: str) -> None:
    with pytest.raises(ValueError, match="at least one"):
        store.write_messages(stream, [])


def test_concurrent_writers_with_one_expected_version_only_one_wins(
    store: MessageStore, stream: str
) -> None:
    store.write_message(None, stream, "Start", {})
    writers = 6
    barrier = threading.Barrier(writers)

    def claim(worker: int) -> str:
        barrier.wait(timeout=10)
        try:
            store.write_message(None, stream, "Claimed", {"worker": worker}, expected_version=0)
        except ConcurrencyError as exc:
            return f"lost at {exc.actual_version}"
        return "won"

    with ThreadPoolExecutor(writers) as pool:
        outcomes = list(pool.map(claim, range(writers)))
    assert sorted(outcomes) == ["lost at 1"] * (writers - 1) + ["won"]
    messages = store.read_stream(stream)
    assert [m.type for m in messages] == ["Start", "Claimed"]
    assert outcomes[messages[1].data["worker"]] == "won"


def test_concurrent_batches_with_one_expected_version_only_one_lands(
    store: MessageStore, stream: str
) -> None:
    writers = 4
    barrier = threading.Barrier(writers)

    def append(worker: int) -> bool:
        batch = [NewMessage("Part", {"worker": worker, "n": n}) for n in range(3)]
        barrier.wait(timeout=10)
        try:
            store.write_messages(stream, batch, expected_version=-1)
        except ConcurrencyError:
            return False
        return True

    with ThreadPoolExecutor(writers) as pool:
        won = list(pool.map(append, range(writers)))
    assert won.count(True) == 1
    messages = store.read_stream(stream)
    assert [m.data["worker"] for m in messages] == [won.index(True)] * 3
    assert [m.position for m in messages] == [0, 1, 2]


def test_concurrent_writers_without_expected_version_all_land_in_order(
    store: MessageStore, stream: str
) -> None:
    def write(worker: int) -> list[int]:
        return [store.write_message(None, stream, "Any", {"w": worker}) for _ in range(10)]

    with ThreadPoolExecutor(4) as pool:
        positions = [p for batch in pool.map(write, range(4)) for p in batch]
    assert sorted(positions) == list(range(40))
    assert [m.position for m in store.read_stream(stream)] == list(range(40))


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1234", "' OR 1=1 --"])
def test_non_uuid_id_raises_store_error_naming_it(
    store: MessageStore, stream: str, bad_id: str
) -> None:
    with pytest.raises(StoreError, match=r"is not a UUID") as caught:
        store.write_message(bad_id, stream, "Bad", {})
    assert repr(bad_id) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert store.stream_version(stream) is None


def test_non_uuid_id_in_a_batch_writes_nothing(store: MessageStore, stream: str) -> None:
    batch = [NewMessage("Fine", {}), NewMessage("Bad", {}, id="nope")]
    with pytest.raises(StoreError, match="'nope' is not a UUID"):
        store.write_messages(stream, batch)
    assert store.stream_version(stream) is None


@pytest.mark.parametrize(
    "bad_stream", ["thread-it's", "thread", "thread-a b", "", "thread-x;--"], ids=repr
)
def test_invalid_stream_name_is_rejected_before_sql(store: MessageStore, bad_stream: str) -> None:
    with pytest.raises(InvalidStreamName):
        store.write_message(None, bad_stream, "Nope", {})
    with pytest.raises(InvalidStreamName):
        store.write_messages(bad_stream, [NewMessage("Nope", {})])
    with store.pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM message_store.messages WHERE stream_name = %s", (bad_stream,)
        ).fetchone()
    assert row == (0,)


def test_quotes_and_unicode_round_trip_in_data_type_and_metadata(
    store: MessageStore, stream: str
) -> None:
    data = {
        "text": 'it\'s "quoted"; DROP TABLE messages; --',
        "unicode": "héllo 世界 🎉 \u2028",
        "backslash": "C:\\path\\",
        "nested": {"list": [1, "two", None, True, 3.5], "empty": {}},
        "dollar": "$$ $1 %s %(x)s",
    }
    metadata = {"note": "O'Brien — “smart quotes”"}
    store.write_message(None, stream, "Said'It", data, metadata)
    [message] = store.read_stream(stream)
    assert message.data == data
    assert message.metadata == metadata
    assert message.type == "Said'It"


def test_nul_characters_which_jsonb_refuses_are_stored_as_replacement_characters(
    store: MessageStore, stream: str
) -> None:
    store.write_message(None, stream, "Nul", {"text": "a\x00b", "k\x00": ["\x00"]})
    store.write_messages(stream, [NewMessage("Nul", {"text": "c\x00"}, {"note": "\x00"})])
    first, second = store.read_stream(stream)
    assert first.data == {"text": "a\ufffdb", "k\ufffd": ["\ufffd"]}
    assert second.data == {"text": "c\ufffd"}
    assert second.metadata == {"note": "\ufffd"}


def test_a_literal_backslash_u0000_is_kept_as_text(store: MessageStore, stream: str) -> None:
    store.write_message(None, stream, "Text", {"text": "\\u0000 is not a NUL"})
    [message] = store.read_stream(stream)
    assert message.data == {"text": "\\u0000 is not a NUL"}
