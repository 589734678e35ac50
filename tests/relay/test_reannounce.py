"""Every head that needs a step is re-announced until it moves; every other head leaves the watch.

Each case writes a thread whose head is one kind of event that leaves a step to run (a user
message, a model response with tool calls, a tool result, a failure, a claim whose lease ran
out, a reply owed to a callback URL ...), as if every notification about it had been lost.
The relay must announce it again once it is due, and again after each recheck while nothing
moves it. Heads that need no step (a thread waiting for its user, or over) are looked at once
and leave the watch, so the watch never grows with idle threads. Runs against the real
Message DB, on a shard category of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from messagedb_agent.events import (
    ContextCompacted,
    Event,
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    Metadata,
    ModelUnavailable,
    ReplyDelivered,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
    SessionCompleted,
    SessionStarted,
    SessionTerminationRequested,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolCall,
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionRequested,
    UserMessageAdded,
    to_message,
)
from messagedb_agent.events.base import UNANSWERED_AFTER
from messagedb_agent.events.ids import (
    compaction_step_id,
    delivery_step_id,
    llm_step_id,
    tool_step_id,
)
from messagedb_agent.notification import Notification
from messagedb_agent.projections.next_step import StepKind, project_next_step
from messagedb_agent.relay import position as position_store
from messagedb_agent.relay.sweep import RECHECK, sweep
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.reading import read_thread

SHARD = 11
CATEGORY = names.shard_category(SHARD)
SECOND = timedelta(seconds=1)
LEASE = timedelta(minutes=5)
BACKOFF = timedelta(minutes=2)
HOOK = "https://example.com/hook"


@dataclass(frozen=True)
class Thread:
    """What a case needs to write its events: the stream, its first step's ids, and times."""

    stream: str
    thread_id: str
    t0: datetime

    @property
    def step(self) -> str:
        return llm_step_id(self.stream, 1)

    @property
    def tools(self) -> str:
        return tool_step_id(self.step)

    def started(self, callback_url: str | None = None) -> Event:
        return SessionStarted(thread_id=self.thread_id, owner="alice", callback_url=callback_url)

    def claim(self) -> Event:
        return LLMCallRequested(
            step_id=self.step,
            model="m",
            context_position=1,
            context_messages=1,
            lease_expires_at=self.t0 + LEASE,
        )

    def asks_for_tools(self) -> Event:
        return LLMResponseReceived(
            step_id=self.step,
            tool_calls=(ToolCall(id="c0", name="add", arguments={}),),
            model_name="m",
        )

    def answers(self) -> Event:
        return LLMResponseReceived(step_id=self.step, response_text="hello back", model_name="m")

    def tool_claim(self) -> Event:
        return ToolExecutionRequested(
            step_id=self.tools,
            tool_call_id="c0",
            tool_name="add",
            arguments={},
            lease_expires_at=self.t0 + LEASE,
        )

    def tool_failed(self, retryable: bool) -> Event:
        return ToolExecutionFailed(
            step_id=self.tools,
            tool_call_id="c0",
            tool_name="add",
            error_message="timed out",
            retryable=retryable,
            retry_at=self.t0 + BACKOFF if retryable else None,
        )

    def llm_failed(self, retryable: bool) -> Event:
        return LLMCallFailed(
            step_id=self.step,
            error_message="busy",
            retryable=retryable,
            retry_at=self.t0 + BACKOFF if retryable else None,
        )

    def unavailable(self, notice: str | None = None) -> Event:
        return ModelUnavailable(
            step_id=self.step,
            error_message="403",
            error_kind="auth",
            retryable=True,
            retry_at=self.t0 + BACKOFF,
            notice=notice,
        )

    def asks_approval(self, expires: bool) -> Event:
        return ToolApprovalRequested(
            step_id=self.tools,
            tool_call_id="c0",
            tool_name="add",
            arguments={},
            decider="alice",
            expires_at=self.t0 + BACKOFF if expires else None,
        )

    def delivery_claim(self, step_id: str, reply_position: int) -> Event:
        return ReplyDeliveryRequested(
            step_id=step_id,
            reply_position=reply_position,
            callback_url=HOOK,
            lease_expires_at=self.t0 + LEASE,
        )


def said() -> Event:
    return UserMessageAdded(message="hello")


LEASE_END = "lease"  # due when the head's lease ends
RETRY_AT = "retry"  # due at the head's retry time
UNANSWERED = "unanswered"  # due UNANSWERED_AFTER after the head was written


@dataclass(frozen=True)
class Case:
    events: Callable[[Thread], list[Event]]
    kind: StepKind  # the step the thread needs, as the step function will decide it
    due: str


NEEDS_A_STEP = {
    "a user message": Case(lambda t: [t.started(), said()], StepKind.LLM_CALL, UNANSWERED),
    "a termination request": Case(
        lambda t: [t.started(), said(), t.claim(), t.answers(), SessionTerminationRequested()],
        StepKind.TERMINATION,
        UNANSWERED,
    ),
    "a model call's claim": Case(
        lambda t: [t.started(), said(), t.claim()], StepKind.LLM_CALL, LEASE_END
    ),
    "a model response with tool calls": Case(
        lambda t: [t.started(), said(), t.claim(), t.asks_for_tools()],
        StepKind.TOOL_EXECUTION,
        UNANSWERED,
    ),
    "a tool call's claim": Case(
        lambda t: [t.started(), said(), t.claim(), t.asks_for_tools(), t.tool_claim()],
        StepKind.TOOL_EXECUTION,
        LEASE_END,
    ),
    "a tool result": Case(
        lambda t: [
            *(t.started(), said(), t.claim(), t.asks_for_tools(), t.tool_claim()),
            ToolExecutionCompleted(step_id=t.tools, tool_call_id="c0", tool_name="add", result=2),
        ],
        StepKind.LLM_CALL,
        UNANSWERED,
    ),
    "a tool failure given up on": Case(
        lambda t: [
            *(t.started(), said(), t.claim(), t.asks_for_tools(), t.tool_claim()),
            t.tool_failed(retryable=False),
        ],
        StepKind.LLM_CALL,
        UNANSWERED,
    ),
    "a tool failure to retry": Case(
        lambda t: [
            *(t.started(), said(), t.claim(), t.asks_for_tools(), t.tool_claim()),
            t.tool_failed(retryable=True),
        ],
        StepKind.TOOL_EXECUTION,
        RETRY_AT,
    ),
    "a model failure to retry": Case(
        lambda t: [t.started(), said(), t.claim(), t.llm_failed(retryable=True)],
        StepKind.LLM_CALL,
        RETRY_AT,
    ),
    "a model failure given up on": Case(
        lambda t: [t.started(), said(), t.claim(), t.llm_failed(retryable=False)],
        StepKind.TERMINATION,
        UNANSWERED,
    ),
    "a model that is unavailable": Case(
        lambda t: [t.started(), said(), t.claim(), t.unavailable()], StepKind.LLM_CALL, RETRY_AT
    ),
    "a compaction": Case(
        lambda t: [
            *(t.started(), said()),
            LLMCallRequested(
                step_id=compaction_step_id(t.stream, 1),
                model="m",
                context_position=1,
                context_messages=1,
                purpose="compaction",
                lease_expires_at=t.t0 + LEASE,
            ),
            ContextCompacted(
                step_id=compaction_step_id(t.stream, 1),
                summary="earlier",
                first_kept_position=1,
                summarised_messages=0,
                tokens_before=1000,
                model_name="m",
            ),
        ],
        StepKind.LLM_CALL,
        UNANSWERED,
    ),
    "a reply owed to the callback URL": Case(
        lambda t: [t.started(HOOK), said(), t.claim(), t.answers()],
        StepKind.DELIVER_REPLY,
        UNANSWERED,
    ),
    "a delivery's claim": Case(
        lambda t: [
            *(t.started(HOOK), said(), t.claim(), t.answers()),
            t.delivery_claim(delivery_step_id(t.step), 3),
        ],
        StepKind.DELIVER_REPLY,
        LEASE_END,
    ),
    "a delivery failure to retry": Case(
        lambda t: [
            *(t.started(HOOK), said(), t.claim(), t.answers()),
            t.delivery_claim(delivery_step_id(t.step), 3),
            ReplyDeliveryFailed(
                step_id=delivery_step_id(t.step),
                attempt=1,
                error_message="503",
                retryable=True,
                retry_at=t.t0 + BACKOFF,
            ),
        ],
        StepKind.DELIVER_REPLY,
        RETRY_AT,
    ),
    "a closing message owed to the callback URL": Case(
        lambda t: [
            *(t.started(HOOK), said(), SessionTerminationRequested()),
            SessionCompleted(completion_reason="terminated", message="Goodbye."),
        ],
        StepKind.DELIVER_REPLY,
        UNANSWERED,
    ),
    "an approval that expires": Case(
        lambda t: [t.started(), said(), t.claim(), t.asks_for_tools(), t.asks_approval(True)],
        StepKind.EXPIRE_APPROVALS,
        RETRY_AT,
    ),
    "an approval granted": Case(
        lambda t: [
            *(t.started(), said(), t.claim(), t.asks_for_tools(), t.asks_approval(False)),
            ToolApprovalGranted(step_id=t.tools, tool_call_id="c0", decided_by="alice"),
        ],
        StepKind.TOOL_EXECUTION,
        UNANSWERED,
    ),
    "an approval denied": Case(
        lambda t: [
            *(t.started(), said(), t.claim(), t.asks_for_tools(), t.asks_approval(False)),
            ToolApprovalDenied(
                step_id=t.tools, tool_call_id="c0", tool_name="add", decided_by="alice"
            ),
        ],
        StepKind.LLM_CALL,
        UNANSWERED,
    ),
    # The notice that the model is unavailable was delivered; the model call it announced
    # waits for its retry time, behind a head (the delivery) that is no failure.
    "a delivered notice while the model is unavailable": Case(
        lambda t: [
            *(t.started(HOOK), said(), t.claim(), t.unavailable(notice="One moment.")),
            t.delivery_claim(delivery_step_id(f"{t.step}/unavailable-1"), 3),
            ReplyDelivered(
                step_id=delivery_step_id(f"{t.step}/unavailable-1"), attempt=1, status_code=200
            ),
        ],
        StepKind.LLM_CALL,
        RETRY_AT,
    ),
}

NEEDS_NO_STEP = {
    "a final reply, no callback URL": lambda t: [t.started(), said(), t.claim(), t.answers()],
    "a delivered final reply": lambda t: [
        *(t.started(HOOK), said(), t.claim(), t.answers()),
        t.delivery_claim(delivery_step_id(t.step), 3),
        ReplyDelivered(step_id=delivery_step_id(t.step), attempt=1, status_code=200),
    ],
    "a completed thread, no callback URL": lambda t: [
        *(t.started(), said(), SessionTerminationRequested()),
        SessionCompleted(completion_reason="terminated", message="Goodbye."),
    ],
    "a thread just opened": lambda t: [t.started()],
    "an approval nobody decided, that never expires": lambda t: [
        *(t.started(), said(), t.claim(), t.asks_for_tools()),
        t.asks_approval(False),
    ],
}


def new_thread(store: MessageStore, events: Callable[[Thread], list[Event]]) -> tuple[str, int]:
    raw = bytearray(uuid.uuid4().bytes)
    raw[0] = SHARD
    thread_id = uuid.UUID(bytes=bytes(raw))
    thread = Thread(names.thread_stream(thread_id), str(thread_id), datetime.now(UTC))
    head = -1
    for event in events(thread):
        message = to_message(event, Metadata())
        head = store.write_message(
            None, thread.stream, message.type, message.data, message.metadata
        )
    return thread.stream, head


def catch_up(store: MessageStore, now: datetime) -> list[Notification]:
    found: list[Notification] = []
    while True:
        result = sweep(store, now, category=CATEGORY, batch_size=100_000)
        assert result.record(store)
        found += result.notifications
        if result.read == 0:
            return found


def announced(found: list[Notification], stream: str) -> list[int]:
    return [n.position for n in found if n.stream_name == stream]


def watched(store: MessageStore) -> dict[str, datetime]:
    return position_store.get(store, position_store.position_stream(CATEGORY))[0].watch


def written_at(store: MessageStore, stream: str) -> datetime:
    last = store.get_last_stream_message(stream)
    assert last is not None
    return last.time if last.time.tzinfo else last.time.replace(tzinfo=UTC)


def first_due(store: MessageStore, stream: str, case: Case) -> datetime:
    """When the relay should offer the step again: as the case says, from the stored events."""
    written = written_at(store, stream)
    if case.due == UNANSWERED:
        return written + UNANSWERED_AFTER
    head = read_thread(store, stream)[-1].event
    due = head.due(written)
    assert due is not None
    if case.due == LEASE_END:
        assert isinstance(head, LLMCallRequested | ToolExecutionRequested | ReplyDeliveryRequested)
        return due
    return max(due, _retry_of(store, stream) or due)


def _retry_of(store: MessageStore, stream: str) -> datetime | None:
    """A backoff that a later head (a delivered notice) keeps waiting for."""
    for recorded in read_thread(store, stream):
        if isinstance(recorded.event, ModelUnavailable) and recorded.event.retry_at is not None:
            return recorded.event.retry_at
    return None


@pytest.mark.parametrize("case", NEEDS_A_STEP.values(), ids=NEEDS_A_STEP.keys())
def test_every_head_that_needs_a_step_is_announced_again_until_it_moves(
    store: MessageStore, case: Case
) -> None:
    """Its notifications were all lost (dropped, or dead-lettered while the step function was
    down): the relay offers the step once it is due, then again after every recheck."""
    catch_up(store, datetime.now(UTC))
    stream, head = new_thread(store, case.events)
    assert announced(catch_up(store, datetime.now(UTC)), stream) == [head]  # a new head
    due = first_due(store, stream, case)
    assert project_next_step(read_thread(store, stream), due + SECOND).kind is case.kind

    assert announced(catch_up(store, due - SECOND), stream) == []
    assert announced(catch_up(store, due + SECOND), stream) == [head]
    assert announced(catch_up(store, due + SECOND + RECHECK / 2), stream) == []
    assert announced(catch_up(store, due + 2 * SECOND + RECHECK), stream) == [head]
    assert stream in watched(store)

    moved = store.write_message(None, stream, "UserMessageAdded", {"message": "still there?"})
    assert set(announced(catch_up(store, due + 3 * SECOND + RECHECK), stream)) == {moved}


@pytest.mark.parametrize("events", NEEDS_NO_STEP.values(), ids=NEEDS_NO_STEP.keys())
def test_a_head_that_needs_no_step_is_not_announced_again_and_leaves_the_watch(
    store: MessageStore, events: Callable[[Thread], list[Event]]
) -> None:
    catch_up(store, datetime.now(UTC))
    stream, head = new_thread(store, events)
    assert announced(catch_up(store, datetime.now(UTC)), stream) == [head]
    later = written_at(store, stream) + UNANSWERED_AFTER + SECOND

    assert announced(catch_up(store, later), stream) == []
    assert stream not in watched(store)
    assert announced(catch_up(store, later + timedelta(days=1)), stream) == []
