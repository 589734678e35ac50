"""Tool approvals read like the other events: in the transcript, the call that waits and how it
was decided; in the event stream, the step, the call and the decision."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.projections.thread_events import ThreadEvents, call

from messagedb_agent.events import (
    Event,
    Recorded,
    ToolApprovalDenied,
    ToolApprovalGranted,
    ToolApprovalRequested,
)
from messagedb_agent.events.approval import EXPIRED
from messagedb_agent.events.ids import tool_step_id
from messagedb_agent.render import event_line, transcript


def waiting(expires_at: datetime | None = None) -> tuple[ThreadEvents, str, Recorded[Event]]:
    """A thread whose model asked to delete task 2: the thread, the tool step, the request."""
    thread = ThreadEvents()
    thread.started()
    thread.user("delete task 2")
    step = thread.claim()
    thread.respond(step, "", [call("c0", "delete_task", task_id=2)])
    tools = tool_step_id(step)
    asked = thread.add(
        ToolApprovalRequested(
            step_id=tools,
            tool_call_id="c0",
            tool_name="delete_task",
            arguments={"task_id": 2},
            decider="alice",
            expires_at=expires_at,
        )
    )
    assert asked is not None
    return thread, tools, asked


def denied(thread: ThreadEvents, step: str, reason: str | None) -> Recorded[Event]:
    recorded = thread.add(
        ToolApprovalDenied(
            step_id=step,
            tool_call_id="c0",
            tool_name="delete_task",
            decided_by="alice",
            reason=reason,
        )
    )
    assert recorded is not None
    return recorded


def test_a_call_waiting_for_approval_says_what_it_asks_to_run() -> None:
    thread, step, asked = waiting()

    assert transcript(thread.events)[-1] == (
        "   tool   ⏸ asks approval to run delete_task(task_id=2) (call c0)"
    )
    assert event_line(asked).split(None, 2)[1:] == [
        "ToolApprovalRequested",
        f"step {step[:8]} c0 asks approval to run delete_task(task_id=2)",
    ]


def test_the_event_line_of_a_request_with_an_expiry_says_until_when() -> None:
    _, _, asked = waiting(datetime(2025, 3, 2, 12, 30, tzinfo=UTC))

    assert event_line(asked).endswith(" until 2025-03-02 12:30:00 UTC")


def test_an_approved_call_says_who_approved_it() -> None:
    thread, step, _ = waiting()
    granted = thread.add(ToolApprovalGranted(step_id=step, tool_call_id="c0", decided_by="alice"))
    assert granted is not None

    assert transcript(thread.events)[-1] == "   tool   ✓ delete_task(task_id=2) approved by alice"
    assert event_line(granted).endswith(
        f"ToolApprovalGranted          step {step[:8]} c0 approved by alice"
    )


def test_a_declined_call_says_who_declined_it_and_why() -> None:
    thread, step, _ = waiting()
    recorded = denied(thread, step, "I still need it")

    assert transcript(thread.events)[-1] == (
        "   tool   ✗ delete_task(task_id=2) declined by alice: I still need it"
    )
    assert event_line(recorded).endswith(
        f"step {step[:8]} c0 delete_task declined by alice: I still need it"
    )


def test_a_call_declined_without_a_reason_says_only_who() -> None:
    thread, step, _ = waiting()
    recorded = denied(thread, step, None)

    assert transcript(thread.events)[-1].endswith("declined by alice")
    assert event_line(recorded).endswith("declined by alice")


def test_an_expired_approval_says_nobody_approved_in_time() -> None:
    thread, step, _ = waiting()
    recorded = denied(thread, step, EXPIRED)

    assert transcript(thread.events)[-1] == (
        "   tool   ✗ delete_task(task_id=2) expired: nobody approved in time"
    )
    assert event_line(recorded).endswith("delete_task expired: nobody approved in time")
