"""Every event type survives the trip to a stored row and back, and cannot be changed."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import ValidationError
from tests.events.catalogue import METADATA, SAMPLES, STREAM, WHEN, stored

from messagedb_agent.events import Event, LLMResponseReceived, from_message, to_message


def _declared_types() -> set[str]:
    return {
        name
        for name, cls in Event.registry.items()
        if cls.__module__.startswith("messagedb_agent.events.")
    }


def test_the_samples_cover_every_declared_event_type() -> None:
    assert {event.type for event in SAMPLES} == _declared_types()


@pytest.mark.parametrize("as_text", [True, False], ids=["json-text", "decoded"])
@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_an_event_reads_back_equal_from_its_stored_row(event: Event, as_text: bool) -> None:
    message = to_message(event, METADATA, id="5b8f3c1e-0d2a-4c6b-9e7f-1a2b3c4d5e6f")
    recorded = from_message(stored(message, 5, as_text=as_text))
    assert type(recorded.event) is type(event)
    assert recorded.event == event
    assert recorded.metadata == METADATA.model_copy(update={"schema_version": event.schema_version})
    assert recorded.type == event.type
    assert recorded.id == "5b8f3c1e-0d2a-4c6b-9e7f-1a2b3c4d5e6f"
    assert (recorded.stream_name, recorded.position, recorded.global_position) == (
        STREAM,
        5,
        1005,
    )
    assert recorded.time == WHEN


def test_metadata_is_written_with_eventide_keys_and_the_schema_version() -> None:
    message = to_message(SAMPLES[1], METADATA)
    assert message.type == "UserMessageAdded"
    assert message.metadata == {
        "correlationStreamName": STREAM,
        "causationMessageStreamName": STREAM,
        "causationMessagePosition": 3,
        "causationMessageGlobalPosition": 1042,
        "userId": "ada",
        "turnId": "turn-7",
        "stepId": "step-1",
        "traceparent": METADATA.traceparent,
        "schemaVersion": 1,
    }


def test_payloads_are_plain_json() -> None:
    response = next(e for e in SAMPLES if isinstance(e, LLMResponseReceived))
    data = to_message(response, METADATA).data
    assert data["tool_calls"][0] == {
        "id": "call-1",
        "name": "add_task",
        "arguments": {"title": "buy milk", "tags": ["home"]},
    }
    assert data["token_usage"] == {
        "input_tokens": 120,
        "output_tokens": 34,
        "cached_input_tokens": 0,
        "thinking_tokens": 0,
    }
    assert "type" not in data  # the type travels in the message's own column


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_events_cannot_be_changed(event: Event) -> None:
    field = next(iter(type(event).model_fields))
    with pytest.raises(ValidationError, match="frozen"):
        setattr(event, field, getattr(event, field))


def test_nested_values_cannot_be_changed_either() -> None:
    response = next(e for e in SAMPLES if isinstance(e, LLMResponseReceived))
    with pytest.raises(ValidationError, match="frozen"):
        response.tool_calls[0].name = "delete_everything"
    with pytest.raises(ValidationError, match="frozen"):
        response.token_usage.input_tokens = 0
    with pytest.raises(TypeError):
        response.tool_calls[0] = response.tool_calls[1]  # type: ignore[index]


def test_metadata_cannot_be_changed() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        METADATA.user_id = "mallory"


def test_a_type_name_can_be_declared_only_once() -> None:
    with pytest.raises(TypeError, match="declared twice"):

        class Impostor(Event):
            type: ClassVar[str] = "UserMessageAdded"
