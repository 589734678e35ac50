"""Snapshots of a thread's view: a cold instance reads one message and the tail, not the thread.

Eventide's entity snapshot, for the `ThreadView`: every `EngineConfig.snapshot_interval` events
the engine writes the view's folded state as a `SnapshotRecorded` message to the thread's
snapshot stream, `<category>:snapshot-<id>` (`thread_0a:snapshot-<uuid>` for the thread
`thread_0a-<uuid>`: a category type, so it is neither in the thread nor in the category the
relay reads). A worker that does not hold the thread in its `ViewCache` reads the last snapshot
and the events from its position on, and folds only those.

The snapshot is a cache, never a source of truth. It is used only when
- it decodes, into exactly the classes and fields this code folds (a strict allowlist: never
  arbitrary objects, whatever the database holds);
- its `fingerprint` is this code's: a hash of the source of every module the folds depend on,
  and of the folds' settings, so a deploy that changes a projection ignores older snapshots
  instead of trusting state its code would not have produced;
- the thread still has the event it was taken at (same position, same id).
Anything else (missing, stale, unreadable, older code) falls back to the full replay, which
gives the same view; the tests hold snapshot + tail equal to the full replay for every shape
of thread they generate.

What is stored is the folds' own state, as compact tagged JSON (`snapshot_state`), compressed.

Writing it never waits for the WAL flush (`synchronous_commit=off`, set in the snapshot's own
transaction only): a crash can lose the latest snapshot, which costs one longer replay, never
a wrong one. A snapshot's id is derived from the thread and position, so two workers that
snapshot the same position write it once.

The interval: 100 events. A turn of the usual shape (a message, a few tool round-trips)
appends about 20 events, so a thread is snapshotted every few turns; a cold read then folds at
most 100 events after one snapshot, whatever the thread's length, while snapshot writes add
one lazily committed message per 100 events. The state is mostly the model's context, which
compaction bounds, so a snapshot stays small next to the events it stands for.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from messagedb_agent.engine.snapshot_state import SnapshotError, pack, restore, state_of, unpack
from messagedb_agent.engine.view import ThreadView
from messagedb_agent.events import ids
from messagedb_agent.events.base import Metadata
from messagedb_agent.events.mapper import from_message, from_messages, to_message
from messagedb_agent.events.snapshot import SnapshotRecorded
from messagedb_agent.projections import llm_context
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.errors import DuplicateMessageError, StoreError

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 100
SNAPSHOT_TYPE = "snapshot"  # the category type of snapshot streams, as Eventide names it
# Where a snapshot's data records its position (`SnapshotRecorded.entity_version`, as stored)
_POSITION_FIELD = "entity_version"

# The modules whose code decides what a fold holds: a change to any of them changes the
# fingerprint, and with it which snapshots are read.
_FOLD_MODULES = (
    "messagedb_agent.engine.snapshot",
    "messagedb_agent.engine.snapshot_state",
    "messagedb_agent.engine.view",
    "messagedb_agent.projections.anchors",
    "messagedb_agent.projections.llm_context",
    "messagedb_agent.projections.next_step",
    "messagedb_agent.projections.progress",
    "messagedb_agent.llm.prompts",
    "messagedb_agent.llm.types",
    "messagedb_agent.events.agent",
    "messagedb_agent.events.approval",
    "messagedb_agent.events.base",
    "messagedb_agent.events.delivery",
    "messagedb_agent.events.ids",
    "messagedb_agent.events.mapper",
    "messagedb_agent.events.system",
    "messagedb_agent.events.tool",
    "messagedb_agent.events.user",
    "messagedb_agent.events.values",
)


def snapshot_stream(stream: str) -> str:
    """`thread_0a:snapshot-<uuid>` for `thread_0a-<uuid>`: the stream's category, typed."""
    parsed = names.parse(stream)
    if parsed.is_category or SNAPSHOT_TYPE in parsed.types:
        raise names.InvalidStreamName(f"{stream!r} cannot have a snapshot stream")
    return names.build(parsed.category, *parsed.ids, types=(*parsed.types, SNAPSHOT_TYPE))


_code_hash: str | None = None


def code_fingerprint() -> str:
    """A hash of the source of the modules the folds depend on (computed once)."""
    global _code_hash
    if _code_hash is None:
        digest = hashlib.sha256()
        for name in _FOLD_MODULES:
            module = importlib.import_module(name)
            source = getattr(module, "__file__", None)
            if source is None:
                raise SnapshotError(f"{name} has no source file to fingerprint")
            digest.update(name.encode())
            digest.update(Path(source).read_bytes())
        _code_hash = digest.hexdigest()[:32]
    return _code_hash


# -- reading and writing ------------------------------------------------------------------------


class Snapshots:
    """One engine's snapshots: where to read them, and when to write them."""

    def __init__(
        self,
        store: MessageStore,
        interval: int = DEFAULT_INTERVAL,
        tool_result_max_chars: int = llm_context.DEFAULT_TOOL_RESULT_MAX_CHARS,
    ) -> None:
        if interval < 1:
            raise ValueError("a snapshot interval is at least one event")
        self.store = store
        self.interval = interval
        self.tool_result_max_chars = tool_result_max_chars
        try:
            self.fingerprint: str | None = f"{code_fingerprint()}/{tool_result_max_chars}"
        except (OSError, SnapshotError) as exc:  # no source to hash: never trust a snapshot
            log.warning("thread snapshots are off: %s", exc)
            self.fingerprint = None

    def may_exist(self, head: int) -> bool:
        """Whether a thread whose head is at `head` can have a snapshot worth reading."""
        return self.fingerprint is not None and head >= self.interval - 1

    def load(self, stream: str) -> ThreadView | None:
        """The view from the last usable snapshot and the events after it; None when there
        is none usable, and the caller reads the thread whole."""
        if self.fingerprint is None:
            return None
        message, after = self.store.read_after_last(
            snapshot_stream(stream), stream, _POSITION_FIELD
        )
        if message is None:
            return None
        snapshot = from_message(message).event
        if not isinstance(snapshot, SnapshotRecorded) or snapshot.fingerprint != self.fingerprint:
            return None  # unreadable, or written by other code: the full replay decides
        position = snapshot.entity_version
        tail = from_messages(after)
        if not tail or tail[0].position != position or tail[0].id != snapshot.head_id:
            return None  # not the history it was taken of
        try:
            view = restore(unpack(snapshot.entity_data), tail, self.tool_result_max_chars)
        except SnapshotError as exc:
            log.warning("snapshot of %s at %s is not usable: %s", stream, position, exc)
            return None
        view.snapshot_position = position
        return view

    def due(self, view: ThreadView) -> bool:
        return (
            self.fingerprint is not None
            and view.head.position - view.snapshot_position >= self.interval
        )

    def save(self, view: ThreadView) -> bool:
        """Write the view's state as of its head; False when it could not be (it is a cache:
        the thread stays readable without it)."""
        if self.fingerprint is None:
            return False
        head = view.head
        try:
            snapshot = SnapshotRecorded(
                entity_version=head.position,
                head_id=head.id,
                fingerprint=self.fingerprint,
                entity_data=pack(state_of(view)),
            )
            stream = snapshot_stream(head.stream_name)
            id_ = ids.message_id(head.stream_name, f"snapshot-{head.position}")
            message = to_message(snapshot, Metadata(correlation_stream_name=head.stream_name), id_)
            self.store.write_messages(stream, [message], durable=False)
        except DuplicateMessageError:
            pass  # another worker snapshotted this very position
        except (SnapshotError, StoreError, ValueError, TypeError) as exc:
            log.warning("could not snapshot %s at %s: %s", head.stream_name, head.position, exc)
            return False
        view.snapshot_position = head.position
        return True
