"""Events written to Message DB read back equal: the mapper and the real store agree."""

from __future__ import annotations

import itertools
import uuid

from tests.events.catalogue import METADATA, SAMPLES

from messagedb_agent.events import (
    Metadata,
    UnknownEvent,
    UserMessageAdded,
    from_messages,
    to_message,
)
from messagedb_agent.store.client import MessageStore


def test_every_event_type_reads_back_equal_from_the_store(store: MessageStore, stream: str) -> None:
    ids = [str(uuid.uuid4()) for _ in SAMPLES]
    metadata = METADATA.model_copy(update={"correlation_stream_name": stream})
    batch = [to_message(event, metadata, id=id_) for event, id_ in zip(SAMPLES, ids, strict=True)]
    last = store.write_messages(stream, batch, expected_version=-1)
    assert last == len(SAMPLES) - 1

    recorded = from_messages(store.read_stream(stream))
    assert [r.event for r in recorded] == list(SAMPLES)
    assert [r.id for r in recorded] == ids
    assert [r.position for r in recorded] == list(range(len(SAMPLES)))
    assert {r.stream_name for r in recorded} == {stream}
    assert all(
        r.metadata == metadata.model_copy(update={"schema_version": r.event.schema_version})
        for r in recorded
    )
    assert all(
        later.global_position > earlier.global_position
        for earlier, later in itertools.pairwise(recorded)
    )


def test_the_stored_metadata_answers_message_db_correlation_queries(
    store: MessageStore, stream: str
) -> None:
    message = to_message(UserMessageAdded(message="hi"), Metadata(correlation_stream_name=stream))
    store.write_messages(stream, [message])
    with store.pool.connection() as conn:
        row = conn.execute(
            "SELECT metadata->>'correlationStreamName', metadata->>'schemaVersion' "
            "FROM message_store.messages WHERE stream_name = %s",
            (stream,),
        ).fetchone()
    assert row == (stream, "1")


def test_messages_of_other_writers_read_back_as_unknown_events(
    store: MessageStore, stream: str
) -> None:
    store.write_message(None, stream, "InvoiceSent", {"amount": 12}, {"source": "billing"})
    store.write_message(None, stream, "UserMessageAdded", {"text": "wrong shape"})
    first, second = from_messages(store.read_stream(stream))
    assert first.event == UnknownEvent(type_name="InvoiceSent", data={"amount": 12})
    assert first.metadata.to_json() == {"source": "billing"}
    assert second.event == UnknownEvent(type_name="UserMessageAdded", data={"text": "wrong shape"})
