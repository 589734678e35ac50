"""Reading stored rows never fails on their content; old schema versions are upcast."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.events.catalogue import METADATA, WHEN, stored

from messagedb_agent.events import (
    Event,
    Metadata,
    UnknownEvent,
    UserMessageAdded,
    from_message,
    from_messages,
    to_message,
)
from messagedb_agent.events.mapper import UPCASTERS, Upcaster
from messagedb_agent.store.message import MessageData, NewMessage


class ParcelWeighed(Event):
    """Version 3 of an event whose payload changed twice: grams, then a unit field."""

    type: ClassVar[str] = "ExampleParcelWeighed"
    schema_version: ClassVar[int] = 3

    parcel: str
    weight: float
    unit: str


def _grams_to_kilograms(data: dict[str, Any]) -> dict[str, Any]:
    return {"parcel": data["parcel"], "weight": data["grams"] / 1000}


def _add_unit(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "unit": "kg"}


@contextmanager
def parcel_upcasters() -> Iterator[None]:
    added: dict[tuple[str, int], Upcaster] = {
        (ParcelWeighed.type, 1): _grams_to_kilograms,
        (ParcelWeighed.type, 2): _add_unit,
    }
    UPCASTERS.update(added)
    try:
        yield
    finally:
        for key in added:
            UPCASTERS.pop(key, None)


@pytest.fixture
def upcasters() -> Iterator[None]:
    """ParcelWeighed's upcasters, registered for one test only."""
    with parcel_upcasters():
        yield


def _row(type_name: str, data: Any, metadata: Any = None, as_text: bool = True) -> MessageData:
    return MessageData(
        id="7d0c9a4e-1b2f-4c3d-8e5f-6a7b8c9d0e1f",
        stream_name="thread-123",
        type=type_name,
        position=0,
        global_position=1,
        data=orjson.dumps(data).decode() if as_text else data,
        metadata=orjson.dumps(metadata).decode() if as_text and metadata is not None else metadata,
        time=WHEN,
    )


# -- unknown and unreadable -------------------------------------------------------------------


def test_an_unknown_type_is_kept_with_its_data() -> None:
    recorded = from_message(_row("InvoiceSent", {"amount": 12, "to": ["a", "b"]}))
    assert recorded.event == UnknownEvent(
        type_name="InvoiceSent", data={"amount": 12, "to": ["a", "b"]}
    )
    assert recorded.type == "InvoiceSent"


def test_a_known_type_with_an_invalid_payload_becomes_unknown() -> None:
    recorded = from_message(_row("UserMessageAdded", {"text": "the field was renamed"}))
    assert recorded.event == UnknownEvent(
        type_name="UserMessageAdded", data={"text": "the field was renamed"}
    )
    assert recorded.type == "UserMessageAdded"


def test_a_payload_that_is_not_an_object_is_kept_under_value() -> None:
    recorded = from_message(_row("UserMessageAdded", ["not", "an", "object"]))
    assert recorded.event == UnknownEvent(
        type_name="UserMessageAdded", data={"value": ["not", "an", "object"]}
    )


def test_text_that_is_not_json_becomes_an_empty_unknown_event() -> None:
    row = MessageData("id", "thread-1", "UserMessageAdded", 0, 1, "{not json", "[", WHEN)
    recorded = from_message(row)
    assert recorded.event == UnknownEvent(type_name="UserMessageAdded", data={})
    assert recorded.metadata == Metadata()


def test_fields_added_by_newer_writers_are_ignored() -> None:
    recorded = from_message(_row("UserMessageAdded", {"message": "hi", "mood": "cheerful"}))
    assert recorded.event == UserMessageAdded(message="hi")


def test_unreadable_metadata_leaves_the_event_readable() -> None:
    recorded = from_message(_row("UserMessageAdded", {"message": "hi"}, {"userId": ["not", "a"]}))
    assert recorded.event == UserMessageAdded(message="hi")
    assert recorded.metadata == Metadata()


def test_metadata_keys_of_other_writers_are_kept() -> None:
    meta = {"correlationStreamName": "thread-1", "replyStreamName": "inbox-9", "schemaVersion": 1}
    recorded = from_message(_row("UserMessageAdded", {"message": "hi"}, meta))
    assert recorded.metadata.correlation_stream_name == "thread-1"
    assert recorded.metadata.to_json() == meta


def test_missing_metadata_is_empty_metadata() -> None:
    recorded = from_message(_row("UserMessageAdded", {"message": "hi"}, None))
    assert recorded.metadata == Metadata()
    assert recorded.event == UserMessageAdded(message="hi")


# -- schema versions --------------------------------------------------------------------------


def test_a_version_one_payload_is_upcast_step_by_step(upcasters: None) -> None:
    recorded = from_message(_row(ParcelWeighed.type, {"parcel": "p1", "grams": 2500}))
    assert recorded.event == ParcelWeighed(parcel="p1", weight=2.5, unit="kg")


def test_the_version_in_the_metadata_picks_the_first_upcaster(upcasters: None) -> None:
    row = _row(ParcelWeighed.type, {"parcel": "p1", "weight": 2.5}, {"schemaVersion": 2})
    assert from_message(row).event == ParcelWeighed(parcel="p1", weight=2.5, unit="kg")


def test_a_current_payload_is_read_as_it_is(upcasters: None) -> None:
    event = ParcelWeighed(parcel="p1", weight=2.5, unit="lb")
    message = to_message(event, METADATA)
    assert message.metadata is not None
    assert message.metadata["schemaVersion"] == 3
    for as_text in (True, False):
        assert from_message(stored(message, as_text=as_text)).event == event


def test_an_old_payload_an_upcaster_cannot_read_becomes_unknown(upcasters: None) -> None:
    recorded = from_message(_row(ParcelWeighed.type, {"parcel": "p1", "pounds": 5}))
    assert recorded.event == UnknownEvent(
        type_name=ParcelWeighed.type, data={"parcel": "p1", "pounds": 5}
    )


def test_an_old_payload_that_is_not_an_object_stays_readable(upcasters: None) -> None:
    recorded = from_message(_row(ParcelWeighed.type, "2500 grams"))
    assert recorded.event == UnknownEvent(
        type_name=ParcelWeighed.type, data={"value": "2500 grams"}
    )


def test_an_old_payload_without_its_upcaster_becomes_unknown() -> None:
    recorded = from_message(_row(ParcelWeighed.type, {"parcel": "p1", "grams": 2500}))
    assert isinstance(recorded.event, UnknownEvent)


# -- anything at all --------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
field_names = st.sampled_from(
    sorted(
        {name for cls in Event.registry.values() for name in cls.model_fields}
        | {"correlationStreamName", "schemaVersion", "userId", "causationMessagePosition"}
    )
)
json_objects = st.dictionaries(field_names | st.text(max_size=8), json_values, max_size=8)
type_names = st.sampled_from(sorted(Event.registry)) | st.text(max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    type_names, json_objects | json_values, json_objects | json_values | st.none(), st.booleans()
)
def test_reading_never_raises_whatever_was_stored(
    type_name: str, data: Any, metadata: Any, as_text: bool
) -> None:
    if not as_text and not isinstance(data, dict):
        data = {"value": data}
    if not as_text and not isinstance(metadata, dict | None):
        metadata = None
    with parcel_upcasters():
        recorded = from_message(_row(type_name, data, metadata, as_text))
    assert recorded.type == type_name
    assert isinstance(recorded.metadata, Metadata)
    if isinstance(recorded.event, UnknownEvent):
        kept = recorded.event.data
        assert kept == (data if isinstance(data, dict) else {"value": data})


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=5))
def test_a_batch_reads_back_in_order(texts: list[str]) -> None:
    rows = [
        stored(NewMessage("UserMessageAdded", {"message": text}, {"userId": "ada"}), index)
        for index, text in enumerate(texts)
    ]
    recorded = from_messages(rows)
    assert [r.event for r in recorded] == [UserMessageAdded(message=t) for t in texts]
    assert [r.position for r in recorded] == list(range(len(texts)))


@pytest.mark.parametrize(
    ("type_name", "old", "field", "value"),
    [
        ("LLMCallFailed", {"step_id": "s", "error_message": "x", "retry_count": 2}, "attempt", 2),
        (
            "ToolExecutionFailed",
            {
                "step_id": "s",
                "tool_call_id": "c",
                "tool_name": "t",
                "error_message": "x",
                "retry_count": 3,
            },
            "attempt",
            3,
        ),
        (
            "LLMCallRequested",
            {
                "step_id": "s",
                "model": "m",
                "context_position": 4,
                "message_count": 7,
                "lease_expires_at": WHEN.isoformat(),
            },
            "context_messages",
            7,
        ),
    ],
)
def test_events_written_before_a_field_was_renamed_read_under_the_new_name(
    type_name: str, old: dict[str, Any], field: str, value: int
) -> None:
    row = stored(NewMessage(type=type_name, data=old, metadata={"schemaVersion": 1}))
    event = from_message(row).event
    assert type(event).__name__ == type_name
    assert getattr(event, field) == value
