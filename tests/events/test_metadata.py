"""`Metadata.follow`: an event caused by another carries its correlation, actor and trace."""

from __future__ import annotations

from tests.events.catalogue import STREAM, WHEN

from messagedb_agent.events import Event, Metadata, Recorded, UserMessageAdded

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _recorded(metadata: Metadata, stream: str = STREAM) -> Recorded[Event]:
    return Recorded(
        id="c1d2e3f4-0000-4000-8000-000000000001",
        stream_name=stream,
        position=6,
        global_position=4242,
        time=WHEN,
        event=UserMessageAdded(message="hello"),
        metadata=metadata,
    )


def test_following_sets_the_causation_to_the_previous_event() -> None:
    previous = _recorded(Metadata(correlation_stream_name=STREAM))
    followed = Metadata().follow(previous)
    assert followed.causation_message_stream_name == STREAM
    assert followed.causation_message_position == 6
    assert followed.causation_message_global_position == 4242


def test_following_keeps_correlation_user_turn_and_trace() -> None:
    previous = _recorded(
        Metadata(
            correlation_stream_name="thread-origin",
            user_id="ada",
            turn_id="turn-3",
            traceparent=TRACE,
            step_id="step-9",
        )
    )
    followed = Metadata(step_id="step-10").follow(previous)
    assert followed == Metadata(
        correlation_stream_name="thread-origin",
        causation_message_stream_name=STREAM,
        causation_message_position=6,
        causation_message_global_position=4242,
        user_id="ada",
        turn_id="turn-3",
        traceparent=TRACE,
        step_id="step-10",
    )


def test_an_uncorrelated_previous_event_correlates_to_its_own_stream() -> None:
    followed = Metadata().follow(_recorded(Metadata()))
    assert followed.correlation_stream_name == STREAM


def test_values_set_on_the_new_metadata_win_over_inherited_ones() -> None:
    previous = _recorded(Metadata(user_id="ada", turn_id="turn-3", traceparent=TRACE))
    newer_trace = "00-11111111111111111111111111111111-2222222222222222-01"
    followed = Metadata(user_id="ada", turn_id="turn-4", traceparent=newer_trace).follow(previous)
    assert (followed.turn_id, followed.traceparent) == ("turn-4", newer_trace)


def test_following_does_not_inherit_the_previous_schema_version() -> None:
    followed = Metadata().follow(_recorded(Metadata(schema_version=7)))
    assert followed.schema_version is None


def test_a_chain_of_follows_keeps_the_first_correlation() -> None:
    first = _recorded(Metadata(correlation_stream_name="thread-origin", user_id="ada"))
    second = _recorded(Metadata().follow(first), stream="thread-other")
    third = Metadata().follow(second)
    assert third.correlation_stream_name == "thread-origin"
    assert third.user_id == "ada"
    assert third.causation_message_stream_name == "thread-other"
