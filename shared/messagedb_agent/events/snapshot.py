"""A snapshot of a stream's folded state, as Eventide's entity snapshots store one.

Written to the stream's snapshot stream (`<category>:snapshot-<id>`), never to the stream
itself: it is a cache of what the stream's events fold to, and can always be rebuilt from them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from messagedb_agent.events.base import Event


class SnapshotRecorded(Event):
    """The folded state of a stream up to `entity_version` (Eventide's name for the position).

    `head_id` is the id of the message at that position, so a reader can tell that the stream
    it reads is the history the snapshot was taken of; `fingerprint` names the code and
    settings that folded it, so state folded by other code is never read as this code's.
    """

    type: ClassVar[str] = "SnapshotRecorded"

    entity_version: int = Field(ge=0)
    head_id: str
    fingerprint: str
    entity_data: dict[str, Any]
