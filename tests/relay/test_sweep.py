from __future__ import annotations

import uuid
from datetime import UTC, datetime

from messagedb_agent.relay.sweep import sweep
from messagedb_agent.store.client import MessageStore


def test_a_foreign_stream_in_the_category_is_skipped_and_the_position_still_advances(
    store: MessageStore,
) -> None:
    foreign = f"thread-{uuid.uuid4().hex[:8]}"  # a valid stream name, but not thread-<uuid>
    store.write_message(None, foreign, "Something", {"x": 1})
    real = f"thread-{uuid.uuid4()}"
    position = store.write_message(None, real, "Something", {"x": 2})
    result = sweep(store, datetime.now(UTC), batch_size=100_000)
    streams = {n.stream_name: n.position for n in result.notifications}
    assert foreign not in streams
    assert streams[real] == position
    last = store.get_last_stream_message(real)
    assert last is not None
    assert result.state.position >= last.global_position
