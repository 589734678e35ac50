"""Snapshots of a thread's view: snapshot + tail is the full replay, and any doubt means replay.

The snapshot is a performance cache for cold instances; the property here is the one that
makes it safe: for every shape of thread and every position a snapshot may be taken at, the
view restored from it and the events after it is the view a full replay builds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, new_thread, text
from tests.projections.histories import Action, replay, scripts
from tests.receiver import Receiver

from messagedb_agent.channels.callback import HttpReplySender
from messagedb_agent.engine.cache import ViewCache
from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.snapshot import _POSITION_FIELD, snapshot_stream
from messagedb_agent.engine.snapshot_state import (
    SnapshotError,
    decode,
    encode,
    restore,
    state_of,
)
from messagedb_agent.engine.step import Engine
from messagedb_agent.engine.view import ThreadView
from messagedb_agent.events import (
    Event,
    Metadata,
    Recorded,
    SnapshotRecorded,
    from_message,
    to_message,
)
from messagedb_agent.llm.types import (
    LLMConfig,
    LLMResponse,
    Message,
    ToolResult,
    ToolSpec,
    UserTurn,
)
from messagedb_agent.projections.next_step import Policy
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.message import NewMessage
from messagedb_agent.threads.commands import add_message, start_thread
from messagedb_agent.threads.reading import read_thread

POLICY = Policy(max_iterations=3, max_llm_attempts=3, max_tool_attempts=2)
MAX_CHARS = 20_000


def stored(state: dict[str, Any]) -> dict[str, Any]:
    """The state as it comes back from the database: through JSON."""
    result: dict[str, Any] = orjson.loads(orjson.dumps(state))
    return result


def assert_same_view(restored: ThreadView, whole: ThreadView, budgets: tuple[int, ...]) -> None:
    assert stored(state_of(restored)) == stored(state_of(whole))
    assert restored.head == whole.head
    assert restored.size == whole.size
    assert restored.started == whole.started
    assert restored.context() == whole.context()
    assert restored.context_tokens == whole.context_tokens
    assert restored.context_messages == whole.context_messages
    now = whole.head.time
    for seconds in (0, 30, 400):
        later = now + timedelta(seconds=seconds)
        for budget in (None, *budgets):
            assert restored.decide(later, POLICY, budget) == whole.decide(later, POLICY, budget)
    for budget in budgets:
        assert restored.compaction(budget) == whole.compaction(budget)


def restored_at(events: list[Recorded[Event]], cut: int) -> ThreadView:
    """The view a snapshot taken after `events[:cut]` and the events after it give."""
    state = stored(state_of(ThreadView(events[:cut])))
    return restore(state, events[cut - 1 :], MAX_CHARS)


@settings(max_examples=150, deadline=None)
@given(scripts, st.data())
def test_snapshot_and_tail_equal_the_full_replay_for_any_thread_and_cut(
    script: list[Action], data: st.DataObject
) -> None:
    events = replay(script).events
    cut = data.draw(st.integers(1, len(events)))
    assert_same_view(restored_at(events, cut), ThreadView(events), (40, 200))


def test_the_claims_both_folds_share_are_stored_once_and_restored_apart() -> None:
    events = replay([("user", "hi"), ("claim", True, 0, 1, 60), ("respond", -1, "hello", 0, None)])
    state = stored(state_of(ThreadView(events.events)))
    assert orjson.dumps(state).count(b'"$":"Anchors"') == 1
    view = restore(state, events.events[-1:], MAX_CHARS)
    _, progress, context = view.folds()
    assert context.anchors == progress.anchors
    assert context.anchors is not progress.anchors


def test_every_cut_of_a_long_thread_restores_the_same_view() -> None:
    script: list[Action] = []
    for turn in range(6):
        script += [
            ("user", f"turn {turn}"),
            ("claim", True, 0, 1, 60),
            ("respond", -1, "", 2, None),
            ("request_tools", -1, 1, 60),
            ("complete_tool", -1, 0),
            ("fail_tool", -1, 1, turn % 2 == 0, 1),
            ("claim", True, 0, 1, 60),
            ("fail_llm", -1, True, 1, 5),
            ("respond", -1, f"answer {turn}", 0, None),
        ]
    events = replay(script).events
    whole = ThreadView(events)
    for cut in range(1, len(events) + 1):
        assert_same_view(restored_at(events, cut), whole, (30, 100))


def test_the_encoding_keeps_types_json_cannot_tell_apart() -> None:
    value = {
        "tuple": (1, (2, "x")),
        "set": {"a", "b"},
        "keys": {1: "one", (2, 3): "pair"},
        "dollar": {"$": "not a tag"},
        "when": datetime(2026, 1, 2, tzinfo=UTC),
        "list": [1, [2]],
    }
    assert decode(orjson.loads(orjson.dumps(encode(value)))) == value


def _with_progress_anchors(anchors: dict[str, Any], strings: list[Any]) -> dict[str, Any]:
    """A real thread's state, its anchors' columns replaced by `anchors`."""
    events = replay([("user", "hi"), ("claim", True, 0, 1, 60)]).events
    state = stored(state_of(ThreadView(events)))
    state["progress"]["v"]["anchors"]["v"].update(anchors)
    state["strings"] = strings
    return state


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"strings": [], "started": None, "progress": None, "context": None},
        {
            "strings": [],
            "started": None,
            "progress": {"$": "Progress", "v": {"head": 1}},
            "context": None,
        },
        {
            "strings": [],
            "started": None,
            "progress": {"$": "os.system", "v": "rm"},
            "context": None,
        },
        {
            "strings": [],
            "started": {"$": "event", "t": "NoSuchEvent", "v": {}},
            "progress": 1,
            "context": 2,
        },
        {"strings": [1], "started": None, "progress": None, "context": None},
        # a claim whose step is not in the string table, or before it
        _with_progress_anchors({"_by_position": {"$": "claims", "p": [1], "s": [5], "a": [0]}}, []),
        _with_progress_anchors(
            {"_by_position": {"$": "claims", "p": [1], "s": [-1], "a": [0]}}, ["step"]
        ),
        # columns of different lengths, attempts that do not add up, a key that is not a list
        _with_progress_anchors(
            {"_by_position": {"$": "claims", "p": [1, 2], "s": [0], "a": [0]}}, ["step"]
        ),
        _with_progress_anchors(
            {"_alive": {"$": "attempts", "s": [0], "n": [2], "k": [1], "a": [0]}}, ["step"]
        ),
        _with_progress_anchors({"_latest": {"$": "latest", "s": [0], "a": ["0"]}}, ["step"]),
    ],
)
def test_a_state_that_is_not_this_codes_is_refused(state: dict[str, Any]) -> None:
    events = replay([("user", "hi")]).events
    with pytest.raises(SnapshotError):
        restore(state, events[-1:], MAX_CHARS)


def test_the_position_a_snapshot_is_read_from_is_where_its_message_stores_it() -> None:
    snapshot = SnapshotRecorded(entity_version=41, head_id="h", fingerprint="f", entity_data={})
    data = to_message(snapshot, Metadata(), str(uuid.uuid4())).data
    assert data[_POSITION_FIELD] == 41


def test_a_thread_stream_has_its_snapshot_in_its_category_typed() -> None:
    thread_id = uuid.uuid4()
    assert snapshot_stream(f"thread_0a-{thread_id}") == f"thread_0a:snapshot-{thread_id}"
    assert snapshot_stream(f"thread-{thread_id}") == f"thread:snapshot-{thread_id}"
    with pytest.raises(ValueError, match="snapshot"):
        snapshot_stream(f"thread_0a:snapshot-{thread_id}")


# -- through the database -------------------------------------------------------------------------


class TurnModel:
    """Each turn: one tool call, then an answer; any summary asked for is given."""

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        first = messages[0] if messages else None
        if isinstance(first, UserTurn) and first.text.startswith("Summarise this conversation"):
            return text("summary of it all")
        since_user = 0
        for message in reversed(messages):
            if isinstance(message, UserTurn):
                break
            since_user += isinstance(message, ToolResult)
        if since_user == 0:
            return calls(("add", {"a": len(messages), "b": 1}))
        return text("answer " * 10)


def engine_with(
    store: MessageStore, clock: Clock, interval: int | None, views: ViewCache | None = None
) -> Engine:
    config = EngineConfig(model="m", snapshot_interval=interval, context_budget=120)
    return Engine(store, TurnModel(), EchoTools(), config, clock=clock, worker="w", views=views)


def drive(store: MessageStore, engine: Engine, turns: int) -> str:
    """A thread of `turns` turns, each with a tool round-trip, compacted as it grows."""
    thread = new_thread(store, message="start " + "words " * 20)
    engine.advance(thread.notification, max_steps=50)
    for turn in range(1, turns):
        more = f"more {turn} " * 15
        appended = add_message(
            store, thread.thread_id, owner="alice", message=more, now=engine.clock()
        )
        engine.advance(appended.notification, max_steps=50)
    stream: str = thread.stream_name
    return stream


def last_turn(store: MessageStore, engine: Engine, stream: str, message: str) -> str | None:
    thread_id = stream.split("-", 1)[1]
    appended = add_message(store, thread_id, owner="alice", message=message, now=engine.clock())
    return engine.advance(appended.notification, max_steps=50).reply


def test_a_cold_engine_reads_the_snapshot_and_the_tail_and_sees_the_full_replay(
    store: MessageStore, clock: Clock
) -> None:
    engine = engine_with(store, clock, interval=8)
    stream = drive(store, engine, turns=6)
    snapshots = engine.snapshots
    assert snapshots is not None
    last = store.get_last_stream_message(snapshot_stream(stream))
    assert last is not None
    assert last.type == SnapshotRecorded.type
    assert store.read_stream(snapshot_stream(stream))  # written as the thread grew
    restored = snapshots.load(stream)
    assert restored is not None
    whole = ThreadView(read_thread(store, stream))
    assert len(restored.events) < len(whole.events)
    assert_same_view(restored, whole, (120,))
    assert any(e.type == "ContextCompacted" for e in whole.events)


def test_a_turn_on_a_snapshot_writes_what_a_turn_on_a_full_replay_writes(
    store: MessageStore, clock: Clock
) -> None:
    shapes = []
    for interval in (None, 5):
        stream = drive(store, engine_with(store, clock, interval), turns=3)
        cold = engine_with(store, clock, interval)  # a new process: no views held
        assert last_turn(store, cold, stream, "last one") == "answer " * 10
        shapes.append([(e.type, e.position) for e in read_thread(store, stream)])
    assert shapes[0] == shapes[1]


def write_snapshot(store: MessageStore, stream: str, **fields: Any) -> None:
    head = read_thread(store, stream)[-1]
    values: dict[str, Any] = {
        "entity_version": head.position,
        "head_id": head.id,
        "fingerprint": "",
        "entity_data": {},
    }
    values.update(fields)
    message = to_message(SnapshotRecorded(**values), Metadata())
    store.write_message(None, snapshot_stream(stream), message.type, message.data)


@pytest.mark.parametrize("spoil", ["garbage", "older code", "another history", "not json state"])
def test_an_unusable_snapshot_falls_back_to_the_full_replay(
    store: MessageStore, clock: Clock, spoil: str
) -> None:
    engine = engine_with(store, clock, interval=4)
    stream = drive(store, engine, turns=2)
    snapshots = engine.snapshots
    assert snapshots is not None
    good = snapshots.load(stream)
    assert good is not None
    state = stored(state_of(good))
    if spoil == "garbage":
        store.write_message(None, snapshot_stream(stream), SnapshotRecorded.type, {"nope": 1})
    elif spoil == "older code":
        write_snapshot(store, stream, fingerprint="older", entity_data=state)
    elif spoil == "another history":
        write_snapshot(store, stream, head_id=str(uuid.uuid4()), fingerprint=snapshots.fingerprint)
    else:
        write_snapshot(
            store, stream, fingerprint=snapshots.fingerprint, entity_data={"progress": "x"}
        )
    assert snapshots.load(stream) is None
    cold = engine_with(store, clock, interval=4)
    assert last_turn(store, cold, stream, "and?") == "answer " * 10
    # the cold engine replayed the thread whole and left a good snapshot behind
    assert cold.snapshots is not None
    again = cold.snapshots.load(stream)
    assert again is not None
    assert_same_view(again, ThreadView(read_thread(store, stream)), (120,))


def test_no_snapshot_is_written_for_a_short_thread_nor_looked_up(
    store: MessageStore, clock: Clock
) -> None:
    engine = engine_with(store, clock, interval=100)
    stream = drive(store, engine, turns=1)
    assert store.get_last_stream_message(snapshot_stream(stream)) is None
    assert engine.snapshots is not None
    assert not engine.snapshots.may_exist(len(read_thread(store, stream)) - 1)


def test_a_snapshot_is_never_written_into_the_thread_or_its_category(
    store: MessageStore, clock: Clock
) -> None:
    engine = engine_with(store, clock, interval=3)
    stream = drive(store, engine, turns=2)
    assert all(e.type != SnapshotRecorded.type for e in read_thread(store, stream))
    category = stream.split("-", 1)[0]
    assert snapshot_stream(stream).startswith(f"{category}:snapshot-")


def test_the_snapshot_event_is_in_the_registry() -> None:
    message = to_message(
        SnapshotRecorded(entity_version=3, head_id="h", fingerprint="f", entity_data={"a": 1}),
        Metadata(),
    )
    assert isinstance(message, NewMessage)
    assert Event.registry[message.type] is SnapshotRecorded


def test_a_reply_from_before_the_snapshot_is_still_delivered_whole(
    store: MessageStore, clock: Clock
) -> None:
    receiver = Receiver()
    try:
        receiver.statuses = [503, 500]
        model = ScriptedModel(script=[text("eventually")])
        config = EngineConfig(model="m", snapshot_interval=1)  # a snapshot after every step
        sender = HttpReplySender("secret", timeout=5, allow_private=True)
        engine = Engine(store, model, EchoTools(), config, clock=clock, replies=sender)
        thread = start_thread(
            store, owner="alice", message="hi", now=clock(), callback_url=receiver.url
        )

        def sleep(seconds: float) -> None:
            clock.advance(seconds)

        run_until_idle(engine, thread.notification, chain=1, sleep=sleep)
        assert [r["reply"]["text"] for r in receiver.replies()] == ["eventually"] * 3
        snapshots = store.read_stream(snapshot_stream(thread.stream_name))
        reply_at = next(
            e.position
            for e in read_thread(store, thread.stream_name)
            if e.type == "LLMResponseReceived"
        )
        # the last attempts were made from views restored after the reply
        taken_at = [from_message(s).event for s in snapshots]
        assert (
            sum(isinstance(e, SnapshotRecorded) and e.entity_version > reply_at for e in taken_at)
            >= 2
        )
    finally:
        receiver.server.shutdown()
