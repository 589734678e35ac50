"""Live text woven into the log's events, without a server: deltas forwarded in order for each
attempt, never after their message's event, a recorded message trimmed to what the client has
not had yet, and a failed attempt's message ended before the stream goes on, also for a client
that resumed in the middle of it."""

from __future__ import annotations

from typing import Any

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    RunFinishedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
)

from messagedb_agent.live.cursor import Cursor, parse_cursor
from messagedb_agent.live.deltas import TextDelta, decode, encode
from messagedb_agent.live.text import LiveText
from messagedb_agent.projections.agui import Emitted, answer_message_id


def group(position: int, *events: BaseEvent) -> list[Emitted]:
    """A group as the projection numbers it: `p.0`, `p.1`, ... and `p` for the last."""
    last = len(events) - 1
    return [
        Emitted(str(position) if i == last else f"{position}.{i}", position, event)
        for i, event in enumerate(events)
    ]


def recorded_message(message: str, text: str, position: int = 9) -> list[Emitted]:
    return group(
        position,
        TextMessageStartEvent(message_id=message, role="assistant"),
        TextMessageContentEvent(message_id=message, delta=text),
        TextMessageEndEvent(message_id=message),
    )


def claim(step: str, attempt: int, position: int) -> list[Emitted]:
    value = {"kind": "llm", "step_id": step, "attempt": attempt}
    return group(position, CustomEvent(name="claim", value=value))


def failed(step: str, attempt: int, position: int) -> list[Emitted]:
    value: dict[str, Any] = {
        "kind": "llm",
        "step_id": step,
        "attempt": attempt,
        "message_id": answer_message_id(step, attempt),
    }
    return group(position, CustomEvent(name="retry", value=value))


def names(events: list[Any]) -> list[str]:
    return [type(getattr(e, "event", e)).__name__ for e in events]


def test_the_text_so_far_is_forwarded_once_and_the_event_sends_only_the_rest() -> None:
    live = LiveText()
    first = live.take(TextDelta("s", 1, 0, "Hello ", full=True), run_open=True)
    second = live.take(TextDelta("s", 1, 1, "Hello wor", full=True), run_open=True)
    assert names(first) == ["TextMessageStartEvent", "TextMessageContentEvent"]
    assert [e.delta for e in second] == ["wor"]  # type: ignore[attr-defined]
    assert live.id_for(8) == "8~9"

    sent = list(live.weave(recorded_message("s", "Hello world")))

    assert [(item.sse_id, type(item.event).__name__) for item in sent] == [
        ("9.1", "TextMessageContentEvent"),
        ("9", "TextMessageEndEvent"),
    ]
    assert sent[0].event.delta == "ld"  # type: ignore[attr-defined]
    late = TextDelta("s", 1, 2, "late", full=False)
    assert live.take(late, run_open=True) == []  # after its event
    assert live.id_for(9) == "9~0"


def test_a_stream_that_starts_listening_mid_reply_catches_up_from_the_text_so_far() -> None:
    live = LiveText()
    caught_up = live.take(TextDelta("s", 1, 7, "Most of a reply", full=True), run_open=True)
    assert names(caught_up) == ["TextMessageStartEvent", "TextMessageContentEvent"]
    more = live.take(TextDelta("s", 1, 8, " and more", full=False), run_open=True)
    assert [e.delta for e in more] == [" and more"]  # type: ignore[attr-defined]


def test_a_gap_or_text_without_its_start_stops_the_live_text_of_that_message() -> None:
    live = LiveText()
    live.take(TextDelta("s", 1, 0, "a", full=True), run_open=True)
    assert live.take(TextDelta("s", 1, 2, "c", full=False), run_open=True) == []  # seq 1 lost
    assert live.take(TextDelta("s", 1, 3, "abcd", full=True), run_open=True) == []  # for good
    late = LiveText()
    only_new = TextDelta("u", 1, 4, "only the new part", full=False)
    assert late.take(only_new, run_open=True) == []


def test_text_outside_a_run_is_never_forwarded() -> None:
    """A cancelled turn's model call may go on writing after the run finished."""
    live = LiveText()
    assert live.take(TextDelta("s", 1, 0, "too late", full=True), run_open=False) == []
    assert live.take(TextDelta("s", 1, 1, "too late still", full=True), run_open=True) == []


def test_a_newer_attempt_ends_the_failed_attempts_message_and_writes_under_its_own_id() -> None:
    live = LiveText()
    live.take(TextDelta("s", 1, 0, "Sure, I ha", full=True), run_open=True)

    retried = live.take(TextDelta("s", 2, 0, "Of course", full=True), run_open=True)

    assert names(retried) == [
        "TextMessageEndEvent",
        "TextMessageStartEvent",
        "TextMessageContentEvent",
    ]
    assert retried[0].message_id == "s"  # type: ignore[attr-defined]
    assert retried[1].message_id == answer_message_id("s", 2) == "s/2"  # type: ignore[attr-defined]
    stale = TextDelta("s", 1, 1, "Sure, I have", full=True)
    assert live.take(stale, run_open=True) == []  # the old attempt's last words
    sent = list(live.weave(recorded_message("s/2", "Of course, done.")))
    assert [e.event.delta for e in sent if isinstance(e.event, TextMessageContentEvent)] == [
        ", done."
    ]


def test_the_log_saying_an_attempt_failed_ends_its_message_under_the_id_before() -> None:
    live = LiveText()
    live.take(TextDelta("s", 1, 0, "Sure, I ha", full=True), run_open=True)
    live.last_id = live.id_for(7)

    sent = list(live.weave(failed("s", 1, 8)))

    assert [(e.sse_id, names([e])[0]) for e in sent] == [
        ("7~0", "TextMessageEndEvent"),
        ("8", "CustomEvent"),
    ]
    assert live.chars == {}
    assert live.take(TextDelta("s", 1, 1, "Sure, I have", full=True), run_open=True) == []


def test_a_run_that_ends_with_live_text_open_ends_the_message_first() -> None:
    live = LiveText()
    live.take(TextDelta("s", 1, 0, "Let me", full=True), run_open=True)
    live.last_id = "7~6"
    cancelled = group(
        8,
        CustomEvent(name="turn_cancelled", value={}),
        RunFinishedEvent(thread_id="t", run_id="r"),
    )

    sent = list(live.weave(cancelled))

    assert names(sent) == ["CustomEvent", "TextMessageEndEvent", "RunFinishedEvent"]
    assert sent[1].sse_id == "8.0"  # the id before it, which the client has by then


def test_a_client_that_resumed_after_live_text_gets_only_the_rest_of_the_message() -> None:
    live = LiveText(cursor=parse_cursor("8~6"))  # it had "Hello " of the call claimed at 8
    replay = [*claim("s", 1, 8), *recorded_message("s", "Hello world", position=9)]

    sent = list(live.weave(replay))

    assert names(sent) == ["TextMessageContentEvent", "TextMessageEndEvent"]
    assert sent[0].event.delta == "world"  # type: ignore[attr-defined]


def test_a_resumed_client_gets_the_end_of_a_message_whose_attempt_failed_meanwhile() -> None:
    live = LiveText(cursor=Cursor(8, chars=10))
    replay = [*claim("s", 1, 8), *failed("s", 1, 9), *recorded_message("s/2", "Of course.", 11)]

    sent = list(live.weave(replay))

    assert [(e.sse_id, names([e])[0]) for e in sent] == [
        ("8~0", "TextMessageEndEvent"),
        ("9", "CustomEvent"),
        ("11.0", "TextMessageStartEvent"),
        ("11.1", "TextMessageContentEvent"),
        ("11", "TextMessageEndEvent"),
    ]
    assert sent[0].event.message_id == "s"  # type: ignore[attr-defined]
    assert sent[3].event.delta == "Of course."  # type: ignore[attr-defined]


def test_live_text_of_an_earlier_turn_is_not_taken_for_the_resumed_ones() -> None:
    """The carried characters belong to the call in flight at the cursor, not to the first
    assistant message of the thread."""
    live = LiveText(cursor=parse_cursor("20~5"))
    replay = [
        *claim("old", 1, 3),
        *recorded_message("old", "An earlier answer.", 4),
        *claim("new", 1, 20),
        *recorded_message("new", "Fresh answer.", 21),
    ]

    sent = list(live.weave(replay))

    assert names(sent) == ["TextMessageContentEvent", "TextMessageEndEvent"]
    assert sent[0].event.delta == " answer."  # type: ignore[attr-defined]


def test_a_delta_payload_round_trips_and_anything_else_on_the_channel_is_ignored() -> None:
    delta = TextDelta("step", 2, 5, "text “quoted” ✓", full=True)
    assert decode(encode(delta)) == delta
    assert decode("not json") is None
    assert decode('{"step": "s"}') is None
