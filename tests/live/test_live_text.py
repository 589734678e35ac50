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


def test_deltas_of_one_attempt_are_forwarded_in_order_and_the_event_sends_the_rest() -> None:
    live = _Live()
    first = live.take(TextDelta("s", 1, 0, "Hello "))
    second = live.take(TextDelta("s", 1, 1, "wor"))
    assert [type(e).__name__ for e in first] == ["TextMessageStartEvent", "TextMessageContentEvent"]
    assert [e.delta for e in second] == ["wor"]  # type: ignore[attr-defined]
    assert live.cursor(8) == "8~9"

    sent = list(_merged(recorded_message("s", "Hello world"), live))

    assert [(item.sse_id, type(item.event).__name__) for item in sent] == [
        ("9.1", "TextMessageContentEvent"),
        ("9", "TextMessageEndEvent"),
    ]
    assert sent[0].event.delta == "ld"  # type: ignore[attr-defined]
    assert live.take(TextDelta("s", 1, 2, "late")) == []  # after its event: nothing
    assert live.cursor(9) == "9~0"


def test_a_gap_or_another_attempt_stops_the_live_text_of_that_step() -> None:
    live = _Live()
    live.take(TextDelta("s", 1, 0, "a"))
    assert live.take(TextDelta("s", 1, 2, "c")) == []  # seq 1 was lost
    assert live.take(TextDelta("s", 1, 3, "d")) == []
    other = _Live()
    other.take(TextDelta("t", 1, 0, "x"))
    assert other.take(TextDelta("t", 2, 0, "y")) == []


def test_a_client_that_resumed_after_live_text_gets_only_the_rest_of_the_message() -> None:
    live = _Live(carried=6)  # it had "Hello " from an earlier connection

    sent = list(_merged(recorded_message("s", "Hello world"), live))

    assert [type(item.event).__name__ for item in sent] == [
        "TextMessageContentEvent",
        "TextMessageEndEvent",
    ]
    assert sent[0].event.delta == "world"  # type: ignore[attr-defined]


def test_a_delta_payload_round_trips_and_anything_else_on_the_channel_is_ignored() -> None:
    delta = TextDelta("step", 2, 5, "text “quoted” ✓")
    assert decode(encode(delta)) == delta
    assert decode("not json") is None
    assert decode('{"step": "s"}') is None
