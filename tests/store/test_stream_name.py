"""Stream names: building, parsing and validating, and agreement with Message DB's own parsers."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import MAX_LENGTH, InvalidStreamName, StreamName

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CATEGORY_TAIL = _LETTERS + "0123456789_"
_ID_CHARS = _CATEGORY_TAIL + ".@|~=:!-"

categories = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(_LETTERS),
    st.text(alphabet=_CATEGORY_TAIL, max_size=12),
)
ids = st.text(alphabet=_ID_CHARS, min_size=1, max_size=20).filter(lambda s: not s.startswith("-"))


@pytest.mark.parametrize(
    ("name", "category", "ids", "types"),
    [
        ("thread-123", "thread", ("123",), ()),
        ("thread:position-relay", "thread", ("relay",), ("position",)),
        ("account:command+snapshot-42", "account", ("42",), ("command", "snapshot")),
        ("tasks-user1+2024", "tasks", ("user1", "2024"), ()),
        ("thread-a-b-c", "thread", ("a-b-c",), ()),
        ("thread", "thread", (), ()),
        ("thread:position", "thread", (), ("position",)),
    ],
)
def test_parse_splits_category_types_and_ids(
    name: str, category: str, ids: tuple[str, ...], types: tuple[str, ...]
) -> None:
    parsed = names.parse(name)
    assert parsed == StreamName(category, ids, types)
    assert str(parsed) == name


def test_build_joins_types_and_compound_ids() -> None:
    assert names.build("thread", "abc") == "thread-abc"
    assert names.build("thread", "relay", types=("position",)) == "thread:position-relay"
    assert names.build("tasks", "a", "b", types=("x", "y")) == "tasks:x+y-a+b"
    assert names.build("thread") == "thread"


def test_compound_id_has_its_first_part_as_cardinal_id() -> None:
    parsed = names.parse("tasks:snapshot-user7+2024+q1")
    assert parsed.id == "user7+2024+q1"
    assert parsed.cardinal_id == "user7"
    assert parsed.category_name == "tasks:snapshot"
    assert names.stream_id("tasks:snapshot-user7+2024+q1") == "user7+2024+q1"
    assert names.category("tasks:snapshot-user7+2024+q1") == "tasks:snapshot"


def test_category_name_has_no_id_or_cardinal_id() -> None:
    parsed = names.parse("thread:position")
    assert parsed.is_category
    assert parsed.id is None
    assert parsed.cardinal_id is None
    assert names.stream_id("thread") is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        "thread ",
        " thread-1",
        "thread-a b",
        "thread-a\tb",
        "thread-a\nb",
        "thread-a\x00",
        "thread-\x7f",
        "thread-",
        "thread--x",
        "thread-a+-x",
        "thread-a+",
        "thread-+a",
        "thread-a++b",
        "1thread-x",
        "_thread-x",
        "thr.ead-x",
        "thr@ad-x",
        "thread:-x",
        "thread:a+-x",
        "thread:a b-x",
        ":position-x",
        "thread-it's",
        'thread-"x"',
        "thread-x;DROP TABLE messages",
        "thread-é",
        "thread-" + "x" * MAX_LENGTH,
    ],
)
def test_parse_rejects_names_message_db_would_misread(bad: str) -> None:
    with pytest.raises(InvalidStreamName):
        names.parse(bad)


def test_name_at_the_length_limit_is_accepted_and_one_more_is_not() -> None:
    longest = "t-" + "x" * (MAX_LENGTH - 2)
    assert names.validate(longest) == longest
    with pytest.raises(InvalidStreamName, match="longer than"):
        names.validate(longest + "x")
    with pytest.raises(InvalidStreamName, match="longer than"):
        names.build("t", "x" * (MAX_LENGTH - 1))


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidStreamName):
        names.parse(123)  # type: ignore[arg-type]
    with pytest.raises(InvalidStreamName):
        names.build("thread", 5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("category", "ids", "types"),
    [
        ("", ("x",), ()),
        ("thread", ("",), ()),
        ("thread", ("-x",), ()),
        ("thread", ("a+b",), ()),
        ("thread", ("a b",), ()),
        ("thread-x", ("y",), ()),
        ("thread", ("x",), ("",)),
        ("thread", ("x",), ("a:b",)),
        ("thread", ("x",), ("a+b",)),
    ],
)
def test_build_rejects_bad_parts(
    category: str, ids: tuple[str, ...], types: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidStreamName):
        names.build(category, *ids, types=types)


def test_validate_requires_a_stream_not_a_category() -> None:
    assert names.validate("thread:position-relay") == "thread:position-relay"
    with pytest.raises(InvalidStreamName, match="is a category"):
        names.validate("thread")
    with pytest.raises(InvalidStreamName, match="is a category"):
        names.validate("thread:position")


def test_validate_category_requires_a_category_not_a_stream() -> None:
    assert names.validate_category("thread") == "thread"
    assert names.validate_category("thread:position") == "thread:position"
    with pytest.raises(InvalidStreamName, match="not a category"):
        names.validate_category("thread-1")
    with pytest.raises(InvalidStreamName):
        names.validate_category("thread-")


def test_thread_stream_is_in_the_shard_its_first_byte_names() -> None:
    thread_id = uuid.UUID("0a3c1f00-0000-4000-8000-000000000001")
    stream = names.thread_stream(thread_id)
    assert stream == f"thread_0a-{thread_id}"
    assert names.thread_id_of(stream) == thread_id
    assert names.thread_stream(str(thread_id).upper()) == stream


def test_a_legacy_thread_stream_is_still_a_thread_stream() -> None:
    thread_id = uuid.uuid4()
    legacy = names.legacy_thread_stream(thread_id)
    assert legacy == f"thread-{thread_id}"
    assert names.thread_id_of(legacy) == thread_id
    assert names.thread_stream_candidates(thread_id) == (names.thread_stream(thread_id), legacy)


def test_new_thread_ids_spread_over_exactly_the_configured_shards() -> None:
    shards = {names.shard_of(names.new_thread_id(4)) for _ in range(400)}
    assert shards == {0, 1, 2, 3}
    assert all(names.new_thread_id(1).bytes[0] == 0 for _ in range(20))
    assert names.new_thread_id(16).version == 4


def test_a_derived_id_stays_derived_when_sharded() -> None:
    derived = uuid.uuid5(uuid.NAMESPACE_URL, "owner/key")
    assert names.in_shard(derived, 16) == names.in_shard(derived, 16)
    assert names.in_shard(derived, 16).bytes[1:] == derived.bytes[1:]
    assert names.shard_of(names.in_shard(derived, 16)) < 16


@pytest.mark.parametrize("shards", [0, 257, -1])
def test_a_shard_count_outside_one_to_256_is_refused(shards: int) -> None:
    with pytest.raises(ValueError, match="THREAD_SHARDS"):
        names.new_thread_id(shards)


def test_the_settings_default_is_the_library_default() -> None:
    from messagedb_agent.settings import Settings

    assert Settings.model_validate({}).threads.thread_shards == names.DEFAULT_THREAD_SHARDS


def test_thread_categories_are_the_legacy_one_and_each_shard() -> None:
    assert names.thread_categories(3) == ("thread", "thread_00", "thread_01", "thread_02")
    assert all(names.is_thread_category(c) for c in names.thread_categories(256))
    assert not names.is_thread_category("thread_1")
    assert not names.is_thread_category("thread_0A")
    assert not names.is_thread_category("threads")


@pytest.mark.parametrize("bad", ["not-a-uuid", "not a uuid", "", "123", "thread-x"], ids=repr)
def test_thread_stream_rejects_what_is_not_a_uuid(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - uuid's own error or InvalidStreamName
        names.thread_stream(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "thread",
        "thread-123",
        "tasks-00000000-0000-0000-0000-000000000000",
        "thread:position-00000000-0000-0000-0000-000000000000",
        "thread-00000000-0000-0000-0000-000000000000+x",
        "thread-ABCDEF00-0000-0000-0000-000000000000",
        "thread-abcdef00000000000000000000000000",
        "thread-urn:uuid:abcdef00-0000-0000-0000-000000000000",
        # a shard category must be the id's own first byte, in lower-case hex
        "thread_0b-0a3c1f00-0000-4000-8000-000000000001",
        "thread_0A-0a3c1f00-0000-4000-8000-000000000001",
        "thread_a-0a3c1f00-0000-4000-8000-000000000001",
        "thread_0a:position-0a3c1f00-0000-4000-8000-000000000001",
    ],
)
def test_thread_id_of_accepts_only_canonical_thread_streams(bad: str) -> None:
    with pytest.raises(InvalidStreamName):
        names.thread_id_of(bad)


@given(
    category=categories,
    types=st.lists(categories, max_size=3).map(tuple),
    stream_ids=st.lists(ids, min_size=0, max_size=4).map(tuple),
)
def test_parse_of_build_round_trips(
    category: str, types: tuple[str, ...], stream_ids: tuple[str, ...]
) -> None:
    built = names.build(category, *stream_ids, types=types)
    parsed = names.parse(built)
    assert parsed == StreamName(category, stream_ids, types)
    assert str(parsed) == built
    assert parsed.is_category == (not stream_ids)
    assert parsed.cardinal_id == (stream_ids[0] if stream_ids else None)


@given(uuid_=st.uuids())
def test_thread_id_of_thread_stream_round_trips(uuid_: uuid.UUID) -> None:
    assert names.thread_id_of(names.thread_stream(uuid_)) == uuid_
    assert names.thread_id_of(names.legacy_thread_stream(uuid_)) == uuid_


SQL_SAMPLES = [
    "thread-123",
    "thread",
    "thread:position-relay",
    "thread:position",
    "tasks:snapshot+v2-user7+2024+q1",
    "thread-a-b-c",
    "account-x:y@z.example",
    f"thread-{uuid.UUID(int=7)}",
    f"thread_0a-{uuid.UUID('0a3c1f00-0000-4000-8000-000000000001')}",
    "thread_0a:position-relay",
]


@pytest.mark.parametrize("name", SQL_SAMPLES)
def test_category_and_ids_agree_with_message_db(store: MessageStore, name: str) -> None:
    with store.pool.connection() as conn:
        row = conn.execute(
            "SELECT message_store.category(%(n)s), message_store.id(%(n)s),"
            " message_store.cardinal_id(%(n)s), message_store.is_category(%(n)s)",
            {"n": name},
        ).fetchone()
    assert row is not None
    parsed = names.parse(name)
    assert (parsed.category_name, parsed.id, parsed.cardinal_id, parsed.is_category) == row


@given(
    category=categories,
    types=st.lists(categories, max_size=2).map(tuple),
    stream_ids=st.lists(ids, min_size=0, max_size=3).map(tuple),
)
def test_generated_names_parse_as_message_db_parses_them(
    store: MessageStore, category: str, types: tuple[str, ...], stream_ids: tuple[str, ...]
) -> None:
    name = names.build(category, *stream_ids, types=types)
    with store.pool.connection() as conn:
        row = conn.execute(
            "SELECT message_store.category(%(n)s), message_store.id(%(n)s),"
            " message_store.cardinal_id(%(n)s)",
            {"n": name},
        ).fetchone()
    parsed = names.parse(name)
    assert (parsed.category_name, parsed.id, parsed.cardinal_id) == row
