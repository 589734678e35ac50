"""A thread as an AG-UI event stream: runs, messages, tool calls, approvals, exact resumption.

Scenario tests build threads by hand; property tests play threads driven by the step protocol
itself (approvals, cancels, late answers, retries, deliveries and endings included) and random
event sequences, and check every stream with the sequence rules AG-UI clients enforce, the
package's own validation, and resumption from every event id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.core import Event as AguiEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from tests.projections.histories import replay, scripts
from tests.projections.thread_events import STREAM, ThreadEvents, call

from messagedb_agent.events import (
    ContextCompacted,
    Event,
    LLMCallRequested,
    Metadata,
    ModelUnavailable,
    Recorded,
    ReplyDelivered,
    ReplyDeliveryFailed,
    ReplyDeliveryRequested,
    SessionStarted,
    SessionTerminationRequested,
    TokenUsage,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
    ToolCall,
    ToolExecutionInDoubt,
    TurnCancelled,
    UserMessageAdded,
)
from messagedb_agent.events.ids import (
    approval_decision_id,
    compaction_step_id,
    message_id,
    tool_step_id,
)
from messagedb_agent.events.system import CompletionReason
from messagedb_agent.live.cursor import START, Cursor, after_cursor, parse_cursor
from messagedb_agent.projections.agui import (
    APPROVAL_ANSWER,
    AguiFold,
    Emitted,
    project_agui,
)
from messagedb_agent.projections.approvals import project_approvals
from messagedb_agent.projections.cost import ModelPrice, PriceTable, project_cost
from messagedb_agent.projections.llm_context import CANCELLED_CALL, IN_DOUBT
from messagedb_agent.projections.next_step import NextStep, Policy, StepKind, project_next_step
from messagedb_agent.projections.session_state import project_session_state

THREAD = STREAM.removeprefix("thread-")
PRICES = PriceTable({"offline": ModelPrice(Decimal(1), Decimal(4), Decimal("0.5"))})
ADAPTER: TypeAdapter[Any] = TypeAdapter(AguiEvent)


class Thread(ThreadEvents):
    """`ThreadEvents` with the rest of what users, owners and the engine write."""

    def opened(self, callback_url: str | None = None) -> None:
        self.add(SessionStarted(thread_id=THREAD, owner="ada", callback_url=callback_url))

    def user_turn(self, text: str, turn_id: str | None = None) -> int:
        meta = Metadata(correlation_stream_name=self.stream, user_id="ada", turn_id=turn_id)
        recorded = self.add(UserMessageAdded(message=text))
        assert recorded is not None
        if turn_id is not None:  # the API writes the turn id into the message's metadata
            self.events[-1] = Recorded(
                recorded.id,
                recorded.stream_name,
                recorded.position,
                recorded.global_position,
                recorded.time,
                recorded.event,
                meta,
            )
        return self.head

    def ask(
        self,
        llm_step: str,
        tool_call: ToolCall,
        *,
        expires_in: timedelta | None = None,
        retry_of: int | None = None,
    ) -> None:
        self.add(
            ToolApprovalRequested(
                step_id=tool_step_id(llm_step),
                tool_call_id=tool_call.id,
                tool_name=tool_call.name,
                arguments=tool_call.arguments,
                decider="ada",
                expires_at=None if expires_in is None else self.next_time + expires_in,
                retry_of=retry_of,
            )
        )

    def grant(self, llm_step: str, tool_call: ToolCall, retry_of: int | None = None) -> None:
        step = tool_step_id(llm_step)
        self.add(
            ToolApprovalGranted(
                step_id=step, tool_call_id=tool_call.id, decided_by="ada", retry_of=retry_of
            ),
            approval_decision_id(step, tool_call.id, retry_of),
        )

    def deny(
        self,
        llm_step: str,
        tool_call: ToolCall,
        reason: str | None = None,
        retry_of: int | None = None,
    ) -> None:
        step = tool_step_id(llm_step)
        self.add(
            ToolApprovalDenied(
                step_id=step,
                tool_call_id=tool_call.id,
                tool_name=tool_call.name,
                decided_by="expiry" if reason == "expired" else "ada",
                reason=reason,
                retry_of=retry_of,
            ),
            approval_decision_id(step, tool_call.id, retry_of),
        )

    def in_doubt(
        self, llm_step: str, tool_call: ToolCall, attempt: int, *, ask_again: bool = False
    ) -> None:
        self.add(
            ToolExecutionInDoubt(
                step_id=tool_step_id(llm_step),
                tool_call_id=tool_call.id,
                tool_name=tool_call.name,
                attempt=attempt,
                retry_on_approval=ask_again,
            )
        )

    def cancel(self, reason: str | None = None) -> None:
        self.add(TurnCancelled(requested_by="ada", reason=reason))

    def unavailable(self, step_id: str, attempt: int = 1, notice: str | None = None) -> None:
        self.add(
            ModelUnavailable(
                step_id=step_id,
                error_message="403 PERMISSION_DENIED",
                error_kind="auth",
                retryable=True,
                attempt=attempt,
                retry_at=self.next_time + timedelta(minutes=5),
                notice=notice,
            ),
            message_id(step_id, f"failure-{attempt}"),
        )

    def compact(self, step: str | None = None, attempt: int = 1) -> None:
        step = step or compaction_step_id(self.stream, self.head)
        self.add(
            LLMCallRequested(
                step_id=step,
                attempt=attempt,
                model="offline",
                context_position=self.head,
                context_messages=self.head + 1,
                purpose="compaction",
                lease_expires_at=self.next_time + timedelta(minutes=2),
            )
        )
        self.add(
            ContextCompacted(
                step_id=step,
                summary="earlier: hello",
                first_kept_position=self.head,
                summarised_messages=2,
                tokens_before=9000,
                model_name="offline",
                token_usage=TokenUsage(input_tokens=900, output_tokens=20),
            )
        )

    def deliver(self, step_id: str, reply_position: int, attempt: int, ok: bool) -> None:
        self.add(
            ReplyDeliveryRequested(
                step_id=step_id,
                reply_position=reply_position,
                callback_url="https://chat.example/hook",
                attempt=attempt,
                lease_expires_at=self.next_time + timedelta(seconds=30),
            )
        )
        if ok:
            self.add(ReplyDelivered(step_id=step_id, attempt=attempt, status_code=204))
        else:
            self.add(
                ReplyDeliveryFailed(
                    step_id=step_id,
                    attempt=attempt,
                    error_message="503",
                    status_code=503,
                    retryable=True,
                    retry_at=self.next_time + timedelta(seconds=2**attempt),
                )
            )


# -- what every stream must satisfy -----------------------------------------------------------


def verify_sequence(events: Sequence[BaseEvent], thread: str = THREAD) -> None:
    """The sequence rules of the AG-UI client's `verifyEvents`, and a little more: runs are
    named once, closed by the run that opened them, and close no message or call half-sent."""
    run: str | None = None
    errored = False
    run_ids: set[str] = set()
    messages: set[str] = set()
    calls: set[str] = set()
    for index, event in enumerate(events):
        where = f"event {index} ({event.type.value})"
        assert not errored, f"{where} follows RUN_ERROR"
        if run is None:  # the first event too
            assert isinstance(event, RunStartedEvent), f"{where} outside a run"
        if isinstance(event, RunStartedEvent):
            assert run is None, f"{where}: a run is still open"
            assert event.thread_id == thread
            assert event.run_id not in run_ids, f"{where}: run id {event.run_id} used again"
            run = event.run_id
            run_ids.add(run)
        elif isinstance(event, RunFinishedEvent | RunErrorEvent):
            assert not messages, f"{where}: messages still open: {messages}"
            assert not calls, f"{where}: tool calls still open: {calls}"
            if isinstance(event, RunFinishedEvent):
                assert event.run_id == run
                assert event.thread_id == thread
            errored = isinstance(event, RunErrorEvent)
            run = None
        elif isinstance(event, TextMessageStartEvent):
            assert event.message_id not in messages, f"{where}: message already open"
            messages.add(event.message_id)
        elif isinstance(event, TextMessageContentEvent):
            assert event.message_id in messages, f"{where}: message not open"
            assert event.delta, f"{where}: empty delta"
        elif isinstance(event, TextMessageEndEvent):
            assert event.message_id in messages, f"{where}: message not open"
            messages.remove(event.message_id)
        elif isinstance(event, ToolCallStartEvent):
            assert event.tool_call_id not in calls, f"{where}: tool call already open"
            calls.add(event.tool_call_id)
        elif isinstance(event, ToolCallArgsEvent):
            assert event.tool_call_id in calls, f"{where}: tool call not open"
        elif isinstance(event, ToolCallEndEvent):
            assert event.tool_call_id in calls, f"{where}: tool call not open"
            calls.remove(event.tool_call_id)


_STARTED = RunStartedEvent(thread_id=THREAD, run_id="r")
_FINISHED = RunFinishedEvent(thread_id=THREAD, run_id="r")
_TEXT = TextMessageStartEvent(message_id="m", role="assistant")


@pytest.mark.parametrize(
    "sequence",
    [
        [_TEXT],
        [_STARTED, _STARTED],
        [_STARTED, _FINISHED, _TEXT],
        [_STARTED, _TEXT, _FINISHED],
        [_STARTED, RunErrorEvent(message="x"), RunStartedEvent(thread_id=THREAD, run_id="s")],
        [_STARTED, _FINISHED, _STARTED],
        [_STARTED, TextMessageContentEvent(message_id="m", delta="x")],
        [_STARTED, ToolCallArgsEvent(tool_call_id="c", delta="{}")],
    ],
)
def test_the_sequence_check_refuses_what_clients_refuse(sequence: list[BaseEvent]) -> None:
    with pytest.raises(AssertionError):
        verify_sequence(sequence)


def round_trip(event: BaseEvent) -> None:
    """As sent (camelCase, no nulls) and read back by the package's own union: the same event."""
    text = json.dumps(event.model_dump(by_alias=True, exclude_none=True))
    back = ADAPTER.validate_json(text)
    assert type(back) is type(event)
    assert back.model_dump(by_alias=True, exclude_none=True) == json.loads(text)


def check_resumption(stream: Sequence[Emitted]) -> None:
    """Resuming from the id of any event sent gives exactly the events after it."""
    ids = [e.sse_id for e in stream]
    assert len(set(ids)) == len(ids), "an id was used twice"
    for cut in range(len(stream) + 1):
        cursor = parse_cursor(stream[cut - 1].sse_id) if cut else START
        assert [e.sse_id for e in stream if after_cursor(e, cursor)] == ids[cut:], cut


def check_stream(events: Sequence[Recorded[Event]]) -> list[Emitted]:
    """Every promise of the projection, on one thread; returns its stream."""
    stream = project_agui(THREAD, events, PRICES)
    agui = AguiFold(THREAD, PRICES)
    fed: list[Emitted] = []
    for index, recorded in enumerate(events):
        group = agui.feed(recorded)
        assert agui.position == recorded.position
        assert all(e.position == recorded.position for e in group)
        if group:
            assert group[-1].sse_id == str(recorded.position)
            assert [e.sse_id for e in group[:-1]] == [
                f"{recorded.position}.{k}" for k in range(len(group) - 1)
            ]
        for emitted in group:
            assert emitted.event.timestamp == _millis(recorded.time)
            if isinstance(emitted.event, StateSnapshotEvent):
                _agrees(emitted.event.snapshot, events[: index + 1])
        fed.extend(group)
    assert fed == stream
    _agrees(agui.state_snapshot().snapshot, events)
    verify_sequence([e.event for e in stream])
    for emitted in stream:
        round_trip(emitted.event)
    round_trip(agui.state_snapshot())
    check_resumption(stream)
    for closing in (i for i, e in enumerate(stream) if _ends_run(e.event)):
        assert isinstance(stream[closing - 1].event, StateSnapshotEvent), "a run ends unsnapped"
    return stream


def _agrees(snapshot: dict[str, Any], events: Sequence[Recorded[Event]]) -> None:
    """The snapshot says what the thread's own projections say."""
    state = project_session_state(events)
    cost = project_cost(events, PRICES)
    assert snapshot["status"] == state.status
    assert snapshot["completion_reason"] == state.completion_reason
    assert snapshot["version"] == state.version
    assert snapshot["counts"] == {
        "user": state.user_message_count,
        "assistant": state.assistant_message_count,
        "tool_calls": state.tool_call_count,
        "tool_errors": state.tool_error_count,
        "llm_calls": state.llm_call_count,
    }
    assert snapshot["token_usage"]["total_tokens"] == state.token_usage.total_tokens
    assert snapshot["token_usage"]["cached_input_tokens"] == state.token_usage.cached_input_tokens
    assert Decimal(snapshot["cost"]["usd"]) == cost.usd
    pending = [] if state.completion_reason else project_approvals(events).pending
    assert [(a["call_id"], a["position"]) for a in snapshot["pending_approvals"]] == [
        (a.tool_call_id, a.position) for a in pending
    ]
    json.dumps(snapshot)


def _ends_run(event: BaseEvent) -> bool:
    return isinstance(event, RunFinishedEvent | RunErrorEvent)


def _millis(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)


def kinds(stream: Sequence[Emitted]) -> list[str]:
    """The stream in brief: event types, CUSTOM events by name."""
    return [
        f"CUSTOM:{e.event.name}" if isinstance(e.event, CustomEvent) else e.event.type.value
        for e in stream
    ]


def of(stream: Sequence[Emitted], cls: type[Any]) -> list[Any]:
    return [e.event for e in stream if isinstance(e.event, cls)]


def customs(stream: Sequence[Emitted], name: str) -> list[Any]:
    return [
        e.event.value for e in stream if isinstance(e.event, CustomEvent) and e.event.name == name
    ]


def at(stream: Sequence[Emitted], position: int) -> list[str]:
    return kinds([e for e in stream if e.position == position])


# -- scenarios --------------------------------------------------------------------------------


def test_a_plain_turn_is_one_run_holding_the_question_and_the_answer() -> None:
    thread = Thread()
    thread.opened()
    asked = thread.user("hello")
    step = thread.claim()
    thread.respond(step, "hi there")
    stream = check_stream(thread.events)

    assert kinds(stream) == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "CUSTOM:claim",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "STATE_SNAPSHOT",
        "RUN_FINISHED",
    ]
    started = of(stream, RunStartedEvent)[0]
    assert started.run_id == thread.events[asked].id  # no turn id: the message's own id
    user, assistant = of(stream, TextMessageStartEvent)
    assert (user.role, user.message_id) == ("user", thread.events[asked].id)
    assert (assistant.role, assistant.message_id) == ("assistant", step)
    assert [e.delta for e in of(stream, TextMessageContentEvent)] == ["hello", "hi there"]
    finished = of(stream, RunFinishedEvent)[0]
    assert finished.run_id == started.run_id
    assert isinstance(finished.outcome, RunFinishedSuccessOutcome)
    assert finished.usage[0].model == "offline"
    assert (finished.usage[0].input_tokens, finished.usage[0].output_tokens) == (10, 5)
    claim = thread.events[asked + 1].event
    assert isinstance(claim, LLMCallRequested)
    assert customs(stream, "claim") == [
        {
            "kind": "llm",
            "step_id": step,
            "attempt": 1,
            "lease_expires_at": claim.lease_expires_at.isoformat(),
            "model": "offline",
        }
    ]


def test_the_run_is_named_by_the_turn_id_and_replays_identically() -> None:
    thread = Thread()
    thread.opened()
    thread.user_turn("hello", turn_id="turn-1")
    thread.respond(thread.claim(), "hi")
    first = project_agui(THREAD, thread.events)
    assert of(first, RunStartedEvent)[0].run_id == "turn-1"
    assert project_agui(THREAD, thread.events) == first


def test_an_empty_message_has_no_content_event() -> None:
    thread = Thread()
    thread.opened()
    thread.user("")
    stream = check_stream(thread.events)
    assert kinds(stream) == ["RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_END"]


def test_a_tool_turn_shows_the_calls_under_their_answer_then_their_results() -> None:
    thread = Thread()
    thread.opened()
    thread.user("weather in Oslo and Rome?")
    step = thread.claim()
    oslo, rome = call("a", "weather", city="Oslo"), call("b", "weather", city="Rome")
    thread.respond(step, "Let me look.", (oslo, rome))
    tools_at = thread.head + 1
    thread.request_tools(step, (oslo, rome))
    thread.complete_tool(step, oslo, {"celsius": 3})
    thread.fail_tool(step, rome, retryable=True)
    thread.request_tools(step, (rome,), attempt=2)
    thread.fail_tool(step, rome, retryable=False, attempt=2, message="no such city")
    thread.respond(thread.claim(), "3 degrees in Oslo; Rome is unknown")
    stream = check_stream(thread.events)

    starts = of(stream, ToolCallStartEvent)
    assert [(s.tool_call_id, s.tool_call_name, s.parent_message_id) for s in starts] == [
        ("a", "weather", step),
        ("b", "weather", step),
    ]
    assert starts[0].model_dump(by_alias=True, exclude_none=True) == {
        "type": "TOOL_CALL_START",
        "timestamp": starts[0].timestamp,
        "toolCallId": "a",
        "toolCallName": "weather",
        "parentMessageId": step,
    }
    assert [json.loads(a.delta) for a in of(stream, ToolCallArgsEvent)] == [
        {"city": "Oslo"},
        {"city": "Rome"},
    ]
    assert at(stream, tools_at) == ["CUSTOM:claim"]
    results = of(stream, ToolCallResultEvent)
    assert [(r.tool_call_id, json.loads(r.content), r.role) for r in results] == [
        ("a", {"celsius": 3}, "tool"),
        ("b", {"error": "no such city", "kind": "invalid_arguments"}, "tool"),
    ]
    assert len({r.message_id for r in results}) == 2
    [retry] = customs(stream, "retry")
    assert (retry["kind"], retry["tool_call_id"], retry["attempt"]) == ("tool", "b", 1)
    assert len(of(stream, RunStartedEvent)) == len(of(stream, RunFinishedEvent)) == 1
    assert kinds(stream)[-2:] == ["STATE_SNAPSHOT", "RUN_FINISHED"]


def test_an_approval_ends_the_run_in_an_interrupt_and_the_decision_starts_the_next() -> None:
    thread = Thread()
    thread.opened()
    thread.user("delete task 2")
    step = thread.claim()
    delete = call("c1", "delete_task", task_id=2)
    thread.respond(step, "", (delete,))
    thread.ask(step, delete, expires_in=timedelta(hours=1))
    asked = thread.head
    thread.grant(step, delete)
    granted = thread.head
    thread.request_tools(step, (delete,))
    thread.complete_tool(step, delete, {"deleted": 2})
    thread.respond(thread.claim(), "Deleted.")
    stream = check_stream(thread.events)

    assert at(stream, asked) == [
        "CUSTOM:approval_requested",
        "STATE_SNAPSHOT",
        "RUN_FINISHED",
    ]
    interrupted = of(stream, RunFinishedEvent)[0]
    assert isinstance(interrupted.outcome, RunFinishedInterruptOutcome)
    [interrupt] = interrupted.outcome.interrupts
    assert (interrupt.id, interrupt.tool_call_id, interrupt.reason) == ("c1", "c1", "tool_approval")
    assert interrupt.expires_at == (thread.events[asked].time + timedelta(hours=1)).isoformat()
    assert interrupt.response_schema == APPROVAL_ANSWER
    assert interrupt.metadata == {
        "step_id": tool_step_id(step),
        "call_id": "c1",
        "tool": "delete_task",
        "arguments": {"task_id": 2},
        "retry_of": None,
    }
    assert "delete_task" in (interrupt.message or "")
    snapshot = [e.event for e in stream if e.position == asked][1]
    assert [a["call_id"] for a in snapshot.snapshot["pending_approvals"]] == ["c1"]

    assert at(stream, granted) == ["RUN_STARTED", "CUSTOM:approval_decided"]
    resumed = of(stream, RunStartedEvent)[1]
    assert resumed.run_id == thread.events[granted].id
    assert customs(stream, "approval_decided")[0]["decision"] == "approved"
    finished = of(stream, RunFinishedEvent)
    assert [f.run_id for f in finished] == [of(stream, RunStartedEvent)[0].run_id, resumed.run_id]
    assert isinstance(finished[1].outcome, RunFinishedSuccessOutcome)
    assert finished[1].usage[0].input_tokens == 10  # the resumed run's own call only


def test_a_refusal_is_the_calls_result_and_the_model_answers_in_a_new_run() -> None:
    thread = Thread()
    thread.opened()
    thread.user("delete everything")
    step = thread.claim()
    delete = call("c1", "delete_task", task_id=1)
    thread.respond(step, "", (delete,))
    thread.ask(step, delete)
    thread.deny(step, delete, reason="not today")
    denied = thread.head
    thread.respond(thread.claim(), "Understood.")
    stream = check_stream(thread.events)

    assert at(stream, denied) == [
        "RUN_STARTED",
        "TOOL_CALL_RESULT",
        "CUSTOM:approval_decided",
    ]
    [result] = of(stream, ToolCallResultEvent)
    assert json.loads(result.content) == {"declined": "the user declined: not today"}
    assert customs(stream, "approval_decided")[0]["decision"] == "declined"


def test_a_decision_while_another_call_waits_interrupts_again_with_the_rest() -> None:
    thread = Thread()
    thread.opened()
    thread.user("delete two")
    step = thread.claim()
    first, second = call("c1", "delete_task", task_id=1), call("c2", "delete_task", task_id=2)
    thread.respond(step, "", (first, second))
    thread.ask(step, first)
    thread.ask(step, second)
    thread.deny(step, first)
    stream = check_stream(thread.events)

    assert at(stream, thread.head) == [
        "RUN_STARTED",
        "TOOL_CALL_RESULT",
        "CUSTOM:approval_decided",
        "STATE_SNAPSHOT",
        "RUN_FINISHED",
    ]
    again = of(stream, RunFinishedEvent)[-1].outcome
    assert isinstance(again, RunFinishedInterruptOutcome)
    assert [i.id for i in again.interrupts] == ["c2"]


def test_an_expired_approval_is_declined_and_the_thread_goes_on() -> None:
    thread = Thread()
    thread.opened()
    thread.user("delete it")
    step = thread.claim()
    delete = call("c1", "delete_task", task_id=1)
    thread.respond(step, "", (delete,))
    thread.ask(step, delete, expires_in=timedelta(minutes=5))
    thread.wait(timedelta(minutes=10))
    thread.deny(step, delete, reason="expired")
    stream = check_stream(thread.events)
    assert json.loads(of(stream, ToolCallResultEvent)[0].content) == {
        "declined": "nobody approved this call in time, so it was not run"
    }
    assert customs(stream, "approval_decided")[0]["decision"] == "expired"
    assert kinds(stream)[-1] == "CUSTOM:approval_decided"  # the model's call is due: a run


def test_a_call_in_doubt_is_asked_about_again_and_a_refusal_leaves_it_in_doubt() -> None:
    thread = Thread()
    thread.opened()
    thread.user("send the mail")
    step = thread.claim()
    mail = call("c1", "send_mail", to="bob")
    thread.respond(step, "", (mail,))
    thread.request_tools(step, (mail,))
    thread.wait(timedelta(minutes=5))
    thread.in_doubt(step, mail, 1, ask_again=True)
    thread.ask(step, mail, retry_of=1)
    asked = thread.head
    thread.deny(step, mail, retry_of=1)
    stream = check_stream(thread.events)

    [doubt] = customs(stream, "in_doubt")
    assert (doubt["tool_call_id"], doubt["attempt"]) == ("c1", 1)
    interrupt = [e.event for e in stream if e.position == asked][-1].outcome.interrupts[0]
    assert interrupt.metadata["retry_of"] == 1
    assert "Run it again?" in interrupt.message
    assert json.loads(of(stream, ToolCallResultEvent)[0].content) == {
        "in_doubt": IN_DOUBT,
        "not_run_again": "the user declined, so it was not run",
    }


def test_a_final_call_in_doubt_says_its_outcome_is_unknown() -> None:
    thread = Thread()
    thread.opened()
    thread.user("pay")
    step = thread.claim()
    pay = call("c1", "pay", amount=3)
    thread.respond(step, "", (pay,))
    thread.request_tools(step, (pay,))
    thread.wait(timedelta(minutes=5))
    thread.in_doubt(step, pay, 1)
    stream = check_stream(thread.events)
    assert json.loads(of(stream, ToolCallResultEvent)[0].content) == {"in_doubt": IN_DOUBT}


def test_a_cancel_ends_the_run_cancelled_and_the_late_answer_is_no_message() -> None:
    thread = Thread()
    thread.opened()
    thread.user("write a long essay")
    step = thread.claim()
    thread.cancel("too slow")
    cancelled = thread.head
    thread.respond(step, "Here is the essay")
    late = thread.head
    stream = check_stream(thread.events)

    assert at(stream, cancelled) == ["CUSTOM:turn_cancelled", "STATE_SNAPSHOT", "RUN_FINISHED"]
    assert isinstance(of(stream, RunFinishedEvent)[0].outcome, RunFinishedCancelledOutcome)
    assert customs(stream, "turn_cancelled") == [
        {"requested_by": "ada", "reason": "too slow", "rollback": False}
    ]
    # the answer is in the log, so the client hears of it, as something nobody acted on
    assert at(stream, late) == [
        "RUN_STARTED",
        "CUSTOM:late_answer_ignored",
        "STATE_SNAPSHOT",
        "RUN_FINISHED",
    ]
    assert customs(stream, "late_answer_ignored")[0]["text"] == "Here is the essay"
    assert [m.role for m in of(stream, TextMessageStartEvent)] == ["user"]


def test_a_cancel_withdraws_the_calls_waiting_for_approval() -> None:
    thread = Thread()
    thread.opened()
    thread.user("delete it")
    step = thread.claim()
    delete = call("c1", "delete_task", task_id=1)
    thread.respond(step, "", (delete,))
    thread.ask(step, delete)
    thread.cancel()
    stream = check_stream(thread.events)

    assert at(stream, thread.head) == [
        "RUN_STARTED",
        "TOOL_CALL_RESULT",
        "CUSTOM:turn_cancelled",
        "STATE_SNAPSHOT",
        "RUN_FINISHED",
    ]
    assert json.loads(of(stream, ToolCallResultEvent)[0].content) == {"cancelled": CANCELLED_CALL}
    assert of(stream, StateSnapshotEvent)[-1].snapshot["pending_approvals"] == []


@pytest.mark.parametrize("reason", ["failure", "timeout", "max_iterations"])
def test_a_thread_that_fails_ends_its_run_in_an_error_and_nothing_follows(
    reason: CompletionReason,
) -> None:
    thread = Thread()
    thread.opened(callback_url="https://chat.example/hook")
    thread.user("hello")
    step = thread.claim()
    thread.fail_llm(step, retryable=False, message="invalid request")
    thread.complete(reason, message="Sorry, I could not answer.")
    thread.deliver("closing", thread.head, 1, ok=True)  # the closing message's delivery
    stream = check_stream(thread.events)

    assert kinds(stream)[-6:] == [
        "CUSTOM:attempt_failed",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "STATE_SNAPSHOT",
        "RUN_ERROR",
    ]
    [error] = of(stream, RunErrorEvent)
    assert (error.code, error.message) == (reason, "Sorry, I could not answer.")
    assert of(stream, StateSnapshotEvent)[-1].snapshot["status"] == "failed"


def test_a_requested_termination_opens_a_run_that_finishes_when_the_thread_ends() -> None:
    thread = Thread()
    thread.opened()
    thread.answered_turn("hello", "hi")
    thread.add(SessionTerminationRequested(reason="user_requested", requested_by="ada"))
    thread.complete("terminated")
    thread.user("anyone there?")  # refused by the API; were it written, nothing follows
    stream = check_stream(thread.events)
    assert kinds(stream)[-4:] == [
        "RUN_STARTED",
        "CUSTOM:termination_requested",
        "STATE_SNAPSHOT",
        "RUN_FINISHED",
    ]
    assert isinstance(of(stream, RunFinishedEvent)[-1].outcome, RunFinishedSuccessOutcome)


def test_retries_are_custom_events_and_an_unavailable_models_notice_is_a_message() -> None:
    thread = Thread()
    thread.opened()
    thread.user("hello")
    step = thread.claim()
    thread.fail_llm(step, retryable=True, retry_after=timedelta(seconds=4))
    thread.wait(timedelta(seconds=5))
    thread.claim(step, attempt=2)
    thread.unavailable(step, 2, notice="The assistant is unavailable; it will answer later.")
    unavailable = thread.head
    thread.wait(timedelta(minutes=6))
    thread.claim(step, attempt=3)
    thread.respond(step, "hi")
    stream = check_stream(thread.events)

    first, second = customs(stream, "retry")
    assert (first["kind"], first["attempt"], first["error_kind"]) == ("llm", 1, "overloaded")
    assert first["retry_at"] == (thread.events[3].time + timedelta(seconds=4)).isoformat()
    assert second["unavailable"] is True
    assert second["error_kind"] == "auth"
    assert at(stream, unavailable) == [
        "CUSTOM:retry",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
    ]
    notice = of(stream, TextMessageStartEvent)[1]
    assert (notice.role, notice.message_id) == ("assistant", thread.events[unavailable].id)
    assert [c["attempt"] for c in customs(stream, "claim")] == [1, 2, 3]
    assert len(of(stream, RunStartedEvent)) == 1


def test_a_compaction_is_a_custom_event_of_the_run() -> None:
    thread = Thread()
    thread.opened()
    thread.user("hello again")
    thread.compact()
    thread.respond(thread.claim(), "hi")
    stream = check_stream(thread.events)
    assert [c["kind"] for c in customs(stream, "claim")] == ["compaction", "llm"]
    [compacted] = customs(stream, "compacted")
    assert compacted["summarised_messages"] == 2
    assert of(stream, RunFinishedEvent)[0].usage[0].input_tokens == 910


def test_a_message_written_during_a_run_starts_no_other_run() -> None:
    thread = Thread()
    thread.opened()
    thread.user("hello")
    step = thread.claim()
    thread.user("and another thing")
    thread.respond(step, "hi")
    thread.respond(thread.claim(), "and to the other thing")
    stream = check_stream(thread.events)
    assert kinds(stream).count("RUN_STARTED") == 1
    assert kinds(stream).count("RUN_FINISHED") == 1
    assert [m.role for m in of(stream, TextMessageStartEvent)] == [
        "user",
        "user",
        "assistant",
        "assistant",
    ]


def test_a_reply_owed_to_a_webhook_does_not_hold_the_run_open() -> None:
    thread = Thread()
    thread.opened(callback_url="https://chat.example/hook")
    thread.user("hello")
    step = thread.claim()
    thread.respond(step, "hi")
    answered = thread.head
    thread.deliver("delivery-1", answered, 1, ok=False)
    thread.wait(timedelta(seconds=5))
    thread.deliver("delivery-1", answered, 2, ok=True)
    stream = check_stream(thread.events)
    assert kinds(stream)[-2:] == ["STATE_SNAPSHOT", "RUN_FINISHED"]
    assert stream[-1].position == answered  # the deliveries show nothing outside a run


def test_a_reused_call_id_gets_an_id_of_its_own() -> None:
    """Gemini names calls `call_0_<tool>` in every response; AG-UI finds calls by id."""
    thread = Thread()
    thread.opened()
    ids: list[str] = []
    for turn in range(2):
        thread.user(f"question {turn}")
        step = thread.claim()
        lookup = call("call_0_lookup", "lookup", q=turn)
        thread.respond(step, "", (lookup,))
        ids.append(tool_step_id(step))
        thread.request_tools(step, (lookup,))
        thread.complete_tool(step, lookup, turn)
        thread.respond(thread.claim(), f"answer {turn}")
    stream = check_stream(thread.events)
    starts = [s.tool_call_id for s in of(stream, ToolCallStartEvent)]
    assert starts[0] == "call_0_lookup"
    assert starts[1].startswith("call_0_lookup@")
    assert [r.tool_call_id for r in of(stream, ToolCallResultEvent)] == starts
    claims = [c for c in customs(stream, "claim") if c["kind"] == "tool"]
    assert [(c["tool_call_id"], c["call_id"], c["step_id"]) for c in claims] == [
        (starts[0], "call_0_lookup", ids[0]),
        (starts[1], "call_0_lookup", ids[1]),
    ]


def test_the_state_snapshot_counts_usage_cost_and_pending_approvals() -> None:
    thread = Thread()
    thread.opened()
    agui = AguiFold(THREAD, PRICES)
    assert agui.position == -1
    assert agui.state_snapshot().timestamp is None
    thread.user("delete it")
    step = thread.claim()
    delete = call("c1", "delete_task", task_id=1)
    thread.respond(step, "On it.", (delete,), TokenUsage(input_tokens=1000, output_tokens=100))
    thread.ask(step, delete)
    for recorded in thread.events:
        agui.feed(recorded)
    snapshot = agui.state_snapshot()
    assert snapshot.timestamp == _millis(thread.now)
    assert snapshot.snapshot == {
        "status": "active",
        "completion_reason": None,
        "version": thread.head,
        "counts": {"user": 1, "assistant": 1, "tool_calls": 0, "tool_errors": 0, "llm_calls": 1},
        "token_usage": {
            "input_tokens": 1000,
            "output_tokens": 100,
            "total_tokens": 1100,
            "cached_input_tokens": 0,
            "thinking_tokens": 0,
        },
        "cost": {"usd": "0.0014", "unpriced_models": []},
        "pending_approvals": [
            {
                "tool_call_id": "c1",
                "call_id": "c1",
                "step_id": tool_step_id(step),
                "tool": "delete_task",
                "arguments": {"task_id": 1},
                "requested_at": thread.now.isoformat(),
                "expires_at": None,
                "position": thread.head,
                "retry_of": None,
            }
        ],
    }


def test_events_of_unknown_types_and_the_threads_start_show_nothing() -> None:
    thread = Thread()
    thread.opened()
    thread.unknown()
    assert project_agui(THREAD, thread.events) == []


def test_an_error_is_a_custom_event_of_the_run_it_happens_in() -> None:
    thread = Thread()
    thread.opened()
    thread.error("the relay hiccuped")
    thread.user("hello")
    thread.error("publish failed")
    stream = check_stream(thread.events)
    assert customs(stream, "error") == [
        {"error_type": "RelayError", "error_message": "publish failed", "step_id": None}
    ]


def test_events_must_be_fed_in_order() -> None:
    thread = Thread()
    thread.opened()
    thread.user("hello")
    agui = AguiFold(THREAD)
    agui.feed(thread.events[1])
    with pytest.raises(ValueError, match="in order"):
        agui.feed(thread.events[0])
    with pytest.raises(ValueError, match="in order"):
        agui.feed(thread.events[1])


def test_resuming_inside_a_group_gives_the_rest_of_it_then_what_follows() -> None:
    thread = Thread()
    thread.opened()
    thread.answered_turn("hello", "hi")
    stream = project_agui(THREAD, thread.events)
    answer = [e.sse_id for e in stream if e.position == thread.head]
    assert answer == [f"{thread.head}.{k}" for k in range(4)] + [str(thread.head)]
    rest = [e.sse_id for e in stream if after_cursor(e, parse_cursor(f"{thread.head}.1"))]
    assert rest == answer[2:]
    assert [e.sse_id for e in stream if after_cursor(e, Cursor(thread.head - 1))] == answer
    assert not [e for e in stream if after_cursor(e, Cursor(thread.head))]


# -- properties -------------------------------------------------------------------------------

POLICY = Policy(max_iterations=3, max_llm_attempts=3, max_tool_attempts=2)
LLM_LEASE = timedelta(seconds=120)
LLM_OUTCOMES = ("answer",) * 6 + ("fail", "unavailable", "stall", "cancelled", "compact")
TOOL_OUTCOMES = ("ok",) * 4 + ("retryable", "error", "stall")
REASONS: dict[str, CompletionReason] = {
    "failure": "failure",
    "timeout": "timeout",
    "max_iterations": "max_iterations",
}


@dataclass
class Simulation:
    """A thread played the way the engine plays it, with owners who approve, refuse or
    forget, users who cancel, and workers that fail, stall and answer late."""

    data: st.DataObject
    thread: Thread = field(default_factory=Thread)
    stalled: list[tuple[str, int]] = field(default_factory=list)  # LLM steps, by attempt
    calls_made: int = 0

    def chance(self, label: str, percent: int) -> bool:
        roll = self.data.draw(st.integers(min_value=0, max_value=99), label=label)
        return roll >= 100 - percent

    def move(self, quiet: bool) -> StepKind:
        if not quiet and self.chance("user writes", 10):
            self.thread.user("and another thing")
        if not quiet and self.chance("user cancels", 4):
            self.thread.cancel()
        if not quiet and self.chance("user ends the thread", 2):
            self.thread.add(SessionTerminationRequested(requested_by="ada"))
        if self.chance("newer code writes", 3):
            self.thread.unknown(tick=False)
        if self.stalled and self.chance("a stalled worker wakes", 25):
            step, _ = self.stalled.pop(0)
            self.thread.respond(step, "a late answer")
        now = self.thread.next_time
        decision = project_next_step(self.thread.events, now, POLICY)
        kind = decision.kind
        if kind is StepKind.LLM_CALL:
            self.llm_step(decision, quiet)
        elif kind is StepKind.COMPACTION:
            self.thread.compact(decision.step_id, decision.attempt)
        elif kind is StepKind.TOOL_EXECUTION:
            self.tool_step(decision)
        elif kind is StepKind.AWAITING_APPROVAL:
            self.owner_decides(decision)
        elif kind is StepKind.EXPIRE_APPROVALS:
            for tool_call in decision.tool_calls:
                retry_of = dict(decision.retries).get(tool_call.id)
                self.deny(decision, tool_call, "expired", retry_of)
        elif kind is StepKind.DELIVER_REPLY:
            assert decision.step_id is not None
            ok = self.chance("delivered", 70)
            self.thread.deliver(decision.step_id, decision.reply_position, decision.attempt, ok)
        elif kind in (StepKind.IN_FLIGHT, StepKind.RETRY_LATER):
            assert decision.not_before is not None
            self.thread.wait(decision.not_before - now + timedelta(seconds=1))
        elif kind is StepKind.TERMINATION:
            message = "Goodbye." if self.chance("closing message", 50) else None
            self.thread.complete(REASONS.get(decision.reason or "", "terminated"), message)
        elif kind is StepKind.WAIT_FOR_USER and not quiet and self.chance("asks", 50):
            self.thread.user("a new question")
        return kind

    def llm_step(self, decision: NextStep, quiet: bool) -> None:
        assert decision.step_id is not None
        outcome = self.data.draw(st.sampled_from(LLM_OUTCOMES), label="llm")
        if outcome == "compact":
            self.thread.compact()
            return
        step = self.thread.claim(decision.step_id, attempt=decision.attempt, lease=LLM_LEASE)
        if outcome == "answer":
            self.respond(step)
        elif outcome == "fail":
            retryable = self.chance("retryable", 80)
            after = timedelta(seconds=2**decision.attempt) if retryable else None
            self.thread.fail_llm(
                step, retryable=retryable, attempt=decision.attempt, retry_after=after
            )
        elif outcome == "unavailable":
            notice = "The assistant is unavailable." if self.chance("notice", 50) else None
            self.thread.unavailable(step, decision.attempt, notice)
        elif outcome == "stall":
            self.stalled.append((step, decision.attempt))
        elif not quiet:  # cancelled while the model thinks; it answers anyway
            self.thread.cancel()
            self.respond(step)

    def respond(self, step: str) -> None:
        count = self.data.draw(st.integers(min_value=0, max_value=2), label="tool calls")
        names = [
            self.data.draw(st.sampled_from(("lookup", "delete_task")), label="tool")
            for _ in range(count)
        ]
        reused = self.chance("provider reuses call ids", 30)
        calls = tuple(
            call(f"call_{i}_{name}" if reused else f"call-{self.calls_made + i}", name, n=i)
            for i, name in enumerate(names)
        )
        self.calls_made += count
        text = "" if calls and self.chance("silent", 50) else "an answer"
        self.thread.respond(step, text, calls)

    def tool_step(self, decision: NextStep) -> None:
        llm_step = self.llm_step_of(decision)
        for tool_call in decision.tool_calls:
            if tool_call.name == "delete_task" and tool_call.id not in decision.approved:
                ttl = timedelta(minutes=10) if self.chance("expires", 50) else None
                self.thread.ask(llm_step, tool_call, expires_in=ttl)
                continue
            if tool_call.id in decision.silent and self.chance("in doubt", 60):
                ask_again = tool_call.name == "delete_task"
                self.thread.in_doubt(llm_step, tool_call, decision.attempt - 1, ask_again=ask_again)
                if ask_again:
                    self.thread.ask(llm_step, tool_call, retry_of=decision.attempt - 1)
                continue
            self.thread.request_tools(llm_step, (tool_call,), attempt=decision.attempt)
            outcome = self.data.draw(st.sampled_from(TOOL_OUTCOMES), label="tool outcome")
            if outcome == "ok":
                self.thread.complete_tool(llm_step, tool_call, {"n": 1})
            elif outcome != "stall":
                retryable = outcome == "retryable" and decision.attempt < POLICY.max_tool_attempts
                self.thread.fail_tool(
                    llm_step, tool_call, retryable=retryable, attempt=decision.attempt
                )

    def owner_decides(self, decision: NextStep) -> None:
        for tool_call in decision.tool_calls:
            retry_of = self.retry_of(decision, tool_call)
            if self.chance("the owner grants", 50):
                self.thread.grant(self.llm_step_of(decision), tool_call, retry_of)
            elif decision.not_before is None or self.chance("the owner refuses", 50):
                self.deny(decision, tool_call, "no", retry_of)
            else:
                self.thread.wait(decision.not_before - self.thread.next_time + timedelta(seconds=1))
                return

    def deny(
        self, decision: NextStep, tool_call: ToolCall, reason: str, retry_of: int | None
    ) -> None:
        self.thread.deny(self.llm_step_of(decision), tool_call, reason, retry_of)

    def retry_of(self, decision: NextStep, tool_call: ToolCall) -> int | None:
        """The attempt in doubt the latest question about this call asks to rerun."""
        asked = [
            r.event.retry_of
            for r in self.thread.events
            if isinstance(r.event, ToolApprovalRequested)
            and r.event.step_id == decision.step_id
            and r.event.tool_call_id == tool_call.id
        ]
        return asked[-1] if asked else None

    def llm_step_of(self, decision: NextStep) -> str:
        for recorded in reversed(self.thread.events):
            step = getattr(recorded.event, "step_id", None)
            if isinstance(step, str) and tool_step_id(step) == decision.step_id:
                return step
        raise AssertionError("no LLM step leads to this tool step")


def play(data: st.DataObject) -> list[Recorded[Event]]:
    sim = Simulation(data)
    callback = "https://chat.example/hook" if sim.chance("has a webhook", 40) else None
    sim.thread.opened(callback_url=callback)
    sim.thread.user("hello")
    for _ in range(30):
        if sim.move(quiet=False) is StepKind.DONE:
            return sim.thread.events
    for _ in range(60):
        if sim.move(quiet=True) in (StepKind.DONE, StepKind.WAIT_FOR_USER):
            break
    return sim.thread.events


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_played_threads_stream_valid_runs_that_resume_exactly(data: st.DataObject) -> None:
    events = play(data)
    stream = check_stream(events)
    cut = data.draw(st.integers(min_value=0, max_value=len(events)), label="events so far")
    before = project_agui(THREAD, events[:cut], PRICES)
    last = events[cut - 1].position if cut else -1
    assert before == [e for e in stream if e.position <= last]
    if cut and before:  # a client that saw all of it resumes with exactly the new events
        cursor = parse_cursor(before[-1].sse_id)
        assert [e for e in stream if after_cursor(e, cursor)] == stream[len(before) :]


@settings(max_examples=150, deadline=None)
@given(scripts)
def test_any_sequence_of_events_streams_valid_runs(script: list[tuple[Any, ...]]) -> None:
    """Even histories no engine would write (late, repeated, out of place) keep the rules."""
    check_stream(replay(script).events)


def test_project_agui_equals_feeding_one_event_at_a_time() -> None:
    thread = Thread()
    thread.opened()
    thread.answered_turn("hello", "hi")
    step = thread.claim()
    thread.cancel()
    thread.respond(step, "late")
    agui = AguiFold(THREAD)
    fed = [emitted for recorded in thread.events for emitted in agui.feed(recorded)]
    assert fed == project_agui(THREAD, thread.events)
    assert fed
