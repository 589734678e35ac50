"""Reading through MessageStore: streams, categories, consumer groups and correlation."""

from __future__ import annotations

import uuid

import pytest

from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.message import NewMessage
from messagedb_agent.store.stream_name import InvalidStreamName

LONG_STREAM_LENGTH = 10_000


@pytest.fixture(scope="module")
def long_stream(store: MessageStore) -> str:
    stream = f"thread-{uuid.uuid4()}"
    for start in range(0, LONG_STREAM_LENGTH, 5_000):
        store.write_messages(
            stream, [NewMessage("Numbered", {"n": n}) for n in range(start, start + 5_000)]
        )
    return stream


def test_read_stream_reads_a_long_stream_whole_and_in_order(
    store: MessageStore, long_stream: str
) -> None:
    messages = store.read_stream(long_stream)
    assert len(messages) == LONG_STREAM_LENGTH
    assert [m.position for m in messages] == list(range(LONG_STREAM_LENGTH))
    assert [m.data["n"] for m in messages] == list(range(LONG_STREAM_LENGTH))
    global_positions = [m.global_position for m in messages]
    assert global_positions == sorted(global_positions)


@pytest.mark.parametrize("batch_size", [1, 7, 1000, 9_999, 10_000, 10_001])
def test_read_stream_pages_whatever_the_batch_size(
    store: MessageStore, long_stream: str, batch_size: int
) -> None:
    start = 9_980 if batch_size < 100 else 0
    messages = store.read_stream(long_stream, start, batch_size=batch_size)
    assert [m.position for m in messages] == list(range(start, LONG_STREAM_LENGTH))


def test_read_stream_from_a_position(store: MessageStore, stream: str) -> None:
    store.write_messages(stream, [NewMessage("E", {"n": n}) for n in range(5)])
    assert [m.position for m in store.read_stream(stream, 3)] == [3, 4]
    assert [m.position for m in store.read_stream(stream, 3, batch_size=1)] == [3, 4]
    assert store.read_stream(stream, 5) == []


def test_read_stream_of_an_unknown_stream_is_empty(store: MessageStore, stream: str) -> None:
    assert store.read_stream(stream) == []


def test_read_stream_refuses_a_batch_size_below_one(store: MessageStore, stream: str) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        store.read_stream(stream, batch_size=0)


def test_get_stream_messages_honours_position_and_batch_size(
    store: MessageStore, stream: str
) -> None:
    store.write_messages(stream, [NewMessage("E", {"n": n}) for n in range(6)])
    assert [m.position for m in store.get_stream_messages(stream, 0, 4)] == [0, 1, 2, 3]
    assert [m.position for m in store.get_stream_messages(stream, 4, 4)] == [4, 5]
    assert [m.position for m in store.get_stream_messages(stream, 2, 1)] == [2]
    assert len(store.get_stream_messages(stream)) == 6


def test_stream_reads_refuse_a_category(store: MessageStore, category: str) -> None:
    with pytest.raises(InvalidStreamName, match="is a category"):
        store.get_stream_messages(category)
    with pytest.raises(InvalidStreamName, match="is a category"):
        store.read_stream(category)
    with pytest.raises(InvalidStreamName, match="is a category"):
        store.get_last_stream_message(category)
    with pytest.raises(InvalidStreamName, match="is a category"):
        store.stream_version(category)


def test_get_last_stream_message_with_and_without_type(store: MessageStore, stream: str) -> None:
    assert store.get_last_stream_message(stream) is None
    store.write_messages(
        stream,
        [
            NewMessage("Asked", {"n": 0}),
            NewMessage("Answered", {"n": 1}),
            NewMessage("Asked", {"n": 2}),
            NewMessage("Noted", {"n": 3}),
        ],
    )
    last = store.get_last_stream_message(stream)
    assert last is not None
    assert (last.type, last.position, last.data) == ("Noted", 3, {"n": 3})
    asked = store.get_last_stream_message(stream, "Asked")
    assert asked is not None
    assert (asked.type, asked.position) == ("Asked", 2)
    answered = store.get_last_stream_message(stream, "Answered")
    assert answered is not None
    assert answered.position == 1
    assert store.get_last_stream_message(stream, "Never") is None


def test_read_after_last_reads_a_snapshot_and_the_stream_from_its_position(
    store: MessageStore, stream: str
) -> None:
    snapshots = f"{stream.split('-', 1)[0]}:snapshot-{stream.split('-', 1)[1]}"
    assert store.read_after_last(snapshots, stream, "at") == (None, [])
    store.write_messages(stream, [NewMessage("E", {"n": n}) for n in range(12)])
    store.write_messages(snapshots, [NewMessage("Snap", {"at": 2}), NewMessage("Snap", {"at": 7})])
    last, after = store.read_after_last(snapshots, stream, "at")
    assert last is not None
    assert last.data == {"at": 7}
    assert [m.position for m in after] == [7, 8, 9, 10, 11]
    paged = store.read_after_last(snapshots, stream, "at", batch_size=2)[1]
    assert [m.position for m in paged] == [7, 8, 9, 10, 11]


@pytest.mark.parametrize(
    "recorded", [None, "1", -1, 1.5, "1; DROP TABLE messages", "99999999999999999999", [1]]
)
def test_read_after_last_reads_no_stream_without_a_position_in_the_last_message(
    store: MessageStore, stream: str, recorded: object
) -> None:
    snapshots = f"{stream.split('-', 1)[0]}:snapshot-{stream.split('-', 1)[1]}"
    store.write_messages(stream, [NewMessage("E", {"n": n}) for n in range(3)])
    store.write_messages(snapshots, [NewMessage("Snap", {"at": recorded})])  # 1 would read 2
    last, after = store.read_after_last(snapshots, stream, "at")
    assert last is not None
    assert after == []


def test_stream_version_is_none_until_the_first_write(store: MessageStore, stream: str) -> None:
    assert store.stream_version(stream) is None
    store.write_message(None, stream, "First", {})
    assert store.stream_version(stream) == 0
    store.write_messages(stream, [NewMessage("More", {}), NewMessage("More", {})])
    assert store.stream_version(stream) == 2


def _fill_category(store: MessageStore, category: str, streams: int, each: int) -> list[str]:
    """Interleave writes across streams so a category read has to merge them by global position."""
    names = [f"{category}-s{i}" for i in range(streams)]
    for n in range(each):
        for name in names:
            store.write_message(None, name, "Filled", {"n": n})
    return names


def test_get_category_messages_returns_the_category_in_global_order(
    store: MessageStore, category: str
) -> None:
    names = _fill_category(store, category, streams=3, each=3)
    store.write_message(None, f"{category}x-1", "Neighbour", {})
    store.write_message(None, f"{category}:other-1", "Typed", {})
    messages = store.get_category_messages(category)
    assert len(messages) == 9
    assert {m.stream_name for m in messages} == set(names)
    global_positions = [m.global_position for m in messages]
    assert global_positions == sorted(global_positions)
    [typed] = store.get_category_messages(f"{category}:other")
    assert typed.type == "Typed"


def test_get_category_messages_from_a_position_with_a_batch_size(
    store: MessageStore, category: str
) -> None:
    _fill_category(store, category, streams=2, each=5)
    everything = store.get_category_messages(category)
    third = everything[2].global_position
    page = store.get_category_messages(category, third, 4)
    assert [m.id for m in page] == [m.id for m in everything[2:6]]
    tail = store.get_category_messages(category, everything[-1].global_position + 1)
    assert tail == []


def test_get_category_messages_filters_by_correlation_category(
    store: MessageStore, category: str
) -> None:
    origin = f"o{uuid.uuid4().hex[:12]}"
    stream = f"{category}-1"
    store.write_message(None, stream, "Plain", {})
    store.write_message(None, stream, "Caused", {}, {"correlationStreamName": f"{origin}-42"})
    store.write_message(None, stream, "Elsewhere", {}, {"correlationStreamName": "other-1"})
    store.write_message(None, f"{category}-2", "Caused", {}, {"correlationStreamName": origin})
    correlated = store.get_category_messages(category, correlation=origin)
    assert [(m.stream_name, m.type) for m in correlated] == [
        (stream, "Caused"),
        (f"{category}-2", "Caused"),
    ]
    assert len(store.get_category_messages(category)) == 4


def test_correlation_must_be_a_category(store: MessageStore, category: str) -> None:
    with pytest.raises(InvalidStreamName, match="not a category"):
        store.get_category_messages(category, correlation="thread-1")


def test_category_reads_refuse_a_stream_name(store: MessageStore, stream: str) -> None:
    with pytest.raises(InvalidStreamName, match="not a category"):
        store.get_category_messages(stream)
    with pytest.raises(InvalidStreamName, match="not a category"):
        list(store.read_category(stream))


def test_consumer_group_members_partition_the_category_by_stream(
    store: MessageStore, category: str
) -> None:
    _fill_category(store, category, streams=12, each=2)
    for compound in ("shared+1", "shared+2", "shared+3"):
        store.write_message(None, f"{category}-{compound}", "Compound", {})
    everything = store.get_category_messages(category)
    size = 3
    parts = [
        store.get_category_messages(category, consumer_group_member=m, consumer_group_size=size)
        for m in range(size)
    ]
    ids = [{m.id for m in part} for part in parts]
    assert set().union(*ids) == {m.id for m in everything}
    assert sum(len(part) for part in parts) == len(everything)
    streams = [{m.stream_name for m in part} for part in parts]
    for a in range(size):
        for b in range(a + 1, size):
            assert not streams[a] & streams[b]
    owners = {
        member
        for member, part in enumerate(streams)
        for name in part
        if name.startswith(f"{category}-shared+")
    }
    assert len(owners) == 1, "streams sharing a cardinal id belong to one member"
    assert sum(1 for part in parts if part) >= 2, "12 streams should not all hash alike"


def test_consumer_group_of_one_reads_everything(store: MessageStore, category: str) -> None:
    _fill_category(store, category, streams=3, each=1)
    whole = store.get_category_messages(category, consumer_group_member=0, consumer_group_size=1)
    assert [m.id for m in whole] == [m.id for m in store.get_category_messages(category)]


@pytest.mark.parametrize(
    ("member", "size"),
    [(0, None), (None, 2), (2, 2), (3, 2), (-1, 2), (0, 0), (0, -1)],
)
def test_invalid_consumer_group_arguments_raise_value_error(
    store: MessageStore, category: str, member: int | None, size: int | None
) -> None:
    with pytest.raises(ValueError, match="consumer_group"):
        store.get_category_messages(
            category, consumer_group_member=member, consumer_group_size=size
        )
    with pytest.raises(ValueError, match="consumer_group"):
        list(store.read_category(category, consumer_group_member=member, consumer_group_size=size))


def test_read_category_iterates_across_batches(store: MessageStore, category: str) -> None:
    _fill_category(store, category, streams=3, each=4)
    everything = store.get_category_messages(category)
    assert len(everything) == 12
    for batch_size in (1, 5, 6, 12, 13):
        read = list(store.read_category(category, batch_size=batch_size))
        assert [m.id for m in read] == [m.id for m in everything], batch_size
    from_fifth = list(store.read_category(category, everything[4].global_position, batch_size=5))
    assert [m.id for m in from_fifth] == [m.id for m in everything[4:]]


def test_read_category_with_a_consumer_group_member(store: MessageStore, category: str) -> None:
    _fill_category(store, category, streams=8, each=3)
    for member in range(2):
        expected = store.get_category_messages(
            category, consumer_group_member=member, consumer_group_size=2
        )
        read = list(
            store.read_category(
                category, batch_size=2, consumer_group_member=member, consumer_group_size=2
            )
        )
        assert [m.id for m in read] == [m.id for m in expected]


@pytest.mark.parametrize("batch_size", [0, -1])
def test_read_category_refuses_a_batch_size_below_one(
    store: MessageStore, category: str, batch_size: int
) -> None:
    store.write_message(None, f"{category}-1", "One", {})
    with pytest.raises(ValueError, match="batch_size"):
        list(store.read_category(category, batch_size=batch_size))
