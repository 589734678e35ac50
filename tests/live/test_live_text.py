"""The stream's handling of live text, without a server: deltas forwarded in order for one
attempt only, never after their message's event, and a recorded message trimmed to what the
client has not had yet."""

from __future__ import annotations

from ag_ui.core import TextMessageContentEvent, TextMessageEndEvent, TextMessageStartEvent

from messagedb_agent.live.deltas import TextDelta, decode, encode
from messagedb_agent.live.stream import _Live, _merged
from messagedb_agent.projections.agui import Emitted


def recorded_message(step: str, text: str, position: int = 9) -> list[Emitted]:
    return [
        Emitted(
            f"{position}.0", position, TextMessageStartEvent(message_id=step, role="assistant")
        ),
        Emitted(f"{position}.1", position, TextMessageContentEvent(message_id=step, delta=text)),
        Emitted(str(position), position, TextMessageEndEvent(message_id=step)),
    ]


def names(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_the_text_so_far_is_forwarded_once_and_the_event_sends_only_the_rest() -> None:
    live = _Live()
    first = live.take(TextDelta("s", 1, 0, "Hello ", full=True))
    second = live.take(TextDelta("s", 1, 1, "Hello wor", full=True))
    assert names(first) == ["TextMessageStartEvent", "TextMessageContentEvent"]
    assert [e.delta for e in second] == ["wor"]  # type: ignore[attr-defined]
    assert live.cursor(8) == "8~9"

    sent = list(_merged(recorded_message("s", "Hello world"), live))

    assert [(item.sse_id, type(item.event).__name__) for item in sent] == [
        ("9.1", "TextMessageContentEvent"),
        ("9", "TextMessageEndEvent"),
    ]
    assert sent[0].event.delta == "ld"  # type: ignore[attr-defined]
    assert live.take(TextDelta("s", 1, 2, "late", full=False)) == []  # after its event
    assert live.cursor(9) == "9~0"


def test_a_stream_that_starts_listening_mid_reply_catches_up_from_the_text_so_far() -> None:
    live = _Live()
    caught_up = live.take(TextDelta("s", 1, 7, "Most of a reply", full=True))
    assert names(caught_up) == ["TextMessageStartEvent", "TextMessageContentEvent"]
    more = live.take(TextDelta("s", 1, 8, " and more", full=False))  # past the payload's size
    assert [e.delta for e in more] == [" and more"]  # type: ignore[attr-defined]


def test_a_gap_another_attempt_or_text_without_its_start_stops_the_live_text() -> None:
    live = _Live()
    live.take(TextDelta("s", 1, 0, "a", full=True))
    assert live.take(TextDelta("s", 1, 2, "c", full=False)) == []  # seq 1 was lost
    assert live.take(TextDelta("s", 1, 3, "abcd", full=True)) == []  # stopped for good
    other = _Live()
    other.take(TextDelta("t", 1, 0, "x", full=True))
    assert other.take(TextDelta("t", 2, 0, "y", full=True)) == []
    late = _Live()
    assert late.take(TextDelta("u", 1, 4, "only the new part", full=False)) == []


def test_a_client_that_resumed_after_live_text_gets_only_the_rest_of_the_message() -> None:
    live = _Live(carried=6)  # it had "Hello " from an earlier connection
    more = live.take(TextDelta("s", 1, 3, "Hello wo", full=True))
    assert names(more) == ["TextMessageContentEvent"]  # its start went out before
    assert [e.delta for e in more] == ["wo"]  # type: ignore[attr-defined]

    sent = list(_merged(recorded_message("s", "Hello world"), live))

    assert [type(item.event).__name__ for item in sent] == [
        "TextMessageContentEvent",
        "TextMessageEndEvent",
    ]
    assert sent[0].event.delta == "rld"  # type: ignore[attr-defined]


def test_a_delta_payload_round_trips_and_anything_else_on_the_channel_is_ignored() -> None:
    delta = TextDelta("step", 2, 5, "text “quoted” ✓", full=True)
    assert decode(encode(delta)) == delta
    assert decode("not json") is None
    assert decode('{"step": "s"}') is None
