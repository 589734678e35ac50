"""Idle threads leave Message DB for an archive (a folder or Cloud Storage) and come back on use.

Archiving one thread (`archive_thread`), in this order, each step safe to crash after:
1. read the stream; only a thread whose next step is "wait for the user" or "done" (the same
   projection the step function and the relay decide with) is archived, never one with a
   live claim, a running backoff or work to do;
2. export it as JSON lines (one event a line, in stream order: id, type, position, global
   position, time, data, metadata), to an object named by the stream, its last position and
   the export's hash, created only if absent (Cloud Storage `ifGenerationMatch=0`);
3. read the export back and compare its size, its SHA-256 and its events (count, ids,
   positions) with what was read from the database: a mismatch stops here, nothing deleted;
4. record `ThreadArchived` (url, count, hash, the thread's title and times) in the owner's
   index `userThreads-<user>`, so a thread without rows can always be found again;
5. delete the stream's rows (and its snapshot stream's) in one transaction that holds the
   category's write lock (`message_store.acquire_lock`, the lock `write_message` takes) and
   first checks that the stream's head is still the exported one: a message appended after
   the export makes the delete a no-op, and the thread stays.

Restoring (`restore`), when a reader or writer finds no rows and the owner's index says the
thread is archived: the export is read, checked against the recorded hash and count (a
corrupted one is refused with `ArchiveCorrupted`, nothing written), and its events are inserted
back with their ids, positions and times, in one transaction that holds the same lock and
first checks that the stream is still empty (Message DB's `expected_version` -1, done under
the lock; `write_message` itself cannot set a position's original time). A concurrent restore
waits for the lock, finds the events there and writes nothing. The export is kept: archiving
the same, unchanged thread again finds it already there. Global positions are new (the rows
are appended to the table again): the relay reads the restored events once more, as new
messages of the category, and re-announces the head if it needs a step.

Deleting needs DELETE on `message_store.messages`, which Message DB's `message_store` role
does not have: the `archive` command runs as an operator. Restoring needs only SELECT and
INSERT, which the functions' roles have.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

import orjson

from messagedb_agent.events import Metadata, from_message, from_messages, to_message
from messagedb_agent.events.ids import message_id
from messagedb_agent.events.index import ThreadArchived
from messagedb_agent.projections.next_step import Policy, StepKind, project_next_step
from messagedb_agent.projections.session_state import project_session_state
from messagedb_agent.store import stream_name as names
from messagedb_agent.store.errors import DuplicateMessageError
from messagedb_agent.store.message import MessageData
from messagedb_agent.threads.errors import ThreadError
from messagedb_agent.threads.index import index_stream

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore

SNAPSHOT_TYPE = "snapshot"  # engine/snapshot.py's category type: `thread_0a:snapshot-<uuid>`
ARCHIVABLE = frozenset({StepKind.WAIT_FOR_USER, StepKind.DONE})
CONTENT_TYPE = "application/x-ndjson"


class ArchiveError(ThreadError):
    """The archive cannot be reached or read; the thread is unchanged."""

    code = "archive_unavailable"


class ArchiveCorrupted(ArchiveError):
    """An export that does not match what it was recorded as: never deleted from, never restored."""

    code = "archive_corrupted"


# -- where exports go -----------------------------------------------------------------------


class ObjectStore(Protocol):
    def url(self, name: str) -> str: ...

    def create(self, name: str, body: bytes) -> bool:
        """Write the object unless one of that name exists; False when it existed."""
        ...

    def size(self, name: str) -> int: ...

    def read(self, name: str) -> bytes: ...


class FolderStore:
    """A folder (locally `.local/archive/`): an object is a file, created with a hard link so
    that an existing one is never overwritten and a reader never sees half a file."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root):
            raise ArchiveError(f"The archive name {name!r} leaves the archive folder.")
        return path

    def url(self, name: str) -> str:
        return self._path(name).as_uri()

    def create(self, name: str, body: bytes) -> bool:
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(body)
                    file.flush()
                    os.fsync(file.fileno())
                try:
                    os.link(temporary, path)
                except FileExistsError:
                    return False
            finally:
                os.unlink(temporary)
        except OSError as exc:
            raise ArchiveError(f"The archive folder {self.root} cannot be written: {exc}") from exc
        return True

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except OSError as exc:
            raise ArchiveError(f"The archived copy {self.url(name)} cannot be read: {exc}") from exc

    def read(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except OSError as exc:
            raise ArchiveError(f"The archived copy {self.url(name)} cannot be read: {exc}") from exc


class GcsStore:
    """A Cloud Storage bucket and prefix, through the official client (`google-cloud-storage`;
    `STORAGE_EMULATOR_HOST` points it at an emulator). Objects are created with
    `ifGenerationMatch=0`, so an existing one is never replaced."""

    def __init__(
        self, bucket: str, prefix: str = "", *, client: Any = None, project: str | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = client
        self._project = project

    def _blob(self, name: str) -> Any:
        if self._client is None:
            # Imported on first use (only a gs:// archive needs it), untyped: the package
            # ships no type information.
            gcs: Any = importlib.import_module("google.cloud.storage")
            self._client = gcs.Client(project=self._project)
        return self._client.bucket(self.bucket).blob(self.prefix + name)

    def url(self, name: str) -> str:
        return f"gs://{self.bucket}/{self.prefix}{name}"

    def create(self, name: str, body: bytes) -> bool:
        from google.api_core import exceptions

        try:
            self._blob(name).upload_from_string(
                body, content_type=CONTENT_TYPE, if_generation_match=0
            )
        except exceptions.PreconditionFailed:
            return False
        except Exception as exc:  # the client raises google.api_core, auth and transport errors
            raise ArchiveError(f"Cloud Storage refused {self.url(name)}: {_one_line(exc)}") from exc
        return True

    def size(self, name: str) -> int:
        try:
            blob = self._blob(name)
            blob.reload()
        except Exception as exc:
            raise ArchiveError(
                f"Cloud Storage cannot find {self.url(name)}: {_one_line(exc)}"
            ) from exc
        return int(blob.size)

    def read(self, name: str) -> bytes:
        try:
            return bytes(self._blob(name).download_as_bytes())
        except Exception as exc:
            raise ArchiveError(
                f"Cloud Storage cannot read {self.url(name)}: {_one_line(exc)}"
            ) from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def object_store(archive_url: str | None, home: Path, project: str | None = None) -> ObjectStore:
    """ARCHIVE_URL as a store: `gs://bucket/prefix`, `file:///path` or a folder; unset is
    `<home>/archive` (`.local/archive/` locally)."""
    if not archive_url:
        return FolderStore(home / "archive")
    parts = urlsplit(archive_url)
    if parts.scheme == "gs":
        if not parts.netloc:
            raise ValueError(f"ARCHIVE_URL {archive_url!r} names no bucket (gs://bucket/prefix)")
        return GcsStore(parts.netloc, parts.path, project=project)
    if parts.scheme == "file":
        return FolderStore(Path(unquote(parts.path)))
    if parts.scheme:
        raise ValueError(f"ARCHIVE_URL {archive_url!r}: use gs://bucket/prefix, file:// or a path")
    return FolderStore(Path(archive_url))


def located(url: str) -> tuple[ObjectStore, str]:
    """The store and object name of an export's recorded url (where it was, not the current
    ARCHIVE_URL, so changing the setting never strands archived threads)."""
    parts = urlsplit(url)
    if parts.scheme == "gs":
        bucket, _, key = f"{parts.netloc}{parts.path}".partition("/")
        return GcsStore(bucket), key
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        return FolderStore(path.parent), path.name
    raise ArchiveError(f"The archived copy's address {url!r} is not one this code can read.")


# -- the export -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One message as exported: everything `message_store.messages` holds of it."""

    id: str
    type: str
    position: int
    global_position: int
    time: datetime  # UTC, without a zone, as Message DB stores it
    data: Any
    metadata: Any

    def line(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "type": self.type,
                "position": self.position,
                "global_position": self.global_position,
                "time": self.time.isoformat(),
                "data": self.data,
                "metadata": self.metadata,
            },
            option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE,
        )

    def message(self, stream: str) -> MessageData:
        return MessageData(
            self.id,
            stream,
            self.type,
            self.position,
            self.global_position,
            self.data,
            self.metadata,
            self.time,
        )


def export(rows: list[Row]) -> bytes:
    return b"".join(row.line() for row in rows)


def parse_export(body: bytes) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(body.splitlines(), 1):
        try:
            item = orjson.loads(line)
            rows.append(
                Row(
                    str(item["id"]),
                    str(item["type"]),
                    int(item["position"]),
                    int(item["global_position"]),
                    datetime.fromisoformat(item["time"]),
                    item["data"],
                    item["metadata"],
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ArchiveCorrupted(
                f"Line {number} of the archived copy is not an event ({exc})."
            ) from exc
    return rows


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


_ROWS = (
    "SELECT id::text, type, position, global_position, time, data::text, metadata::text"
    " FROM message_store.messages WHERE stream_name = %s ORDER BY position"
)


def read_rows(store: MessageStore, stream: str) -> list[Row]:
    names.validate(stream)
    with store.connection() as conn:
        found = conn.execute(_ROWS, (stream,)).fetchall()
    return [
        Row(
            id_,
            type_,
            position,
            global_position,
            time,
            None if data is None else orjson.loads(data),
            None if metadata is None else orjson.loads(metadata),
        )
        for id_, type_, position, global_position, time, data, metadata in found
    ]


def verify(objects: ObjectStore, name: str, body: bytes, rows: list[Row]) -> None:
    """Read the export back: its size, hash and events must be what was written."""
    size = objects.size(name)
    if size != len(body):
        raise ArchiveCorrupted(
            f"The archived copy {objects.url(name)} has {size} bytes, not {len(body)}; "
            "nothing was deleted."
        )
    back = objects.read(name)
    if digest(back) != digest(body):
        raise ArchiveCorrupted(
            f"The archived copy {objects.url(name)} does not read back as written (SHA-256 "
            f"{digest(back)[:16]}…, expected {digest(body)[:16]}…); nothing was deleted."
        )
    parsed = parse_export(back)
    if [(r.id, r.position) for r in parsed] != [(r.id, r.position) for r in rows]:
        raise ArchiveCorrupted(
            f"The archived copy {objects.url(name)} does not hold the thread's {len(rows)} "
            "events; nothing was deleted."
        )


# -- archiving ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    stream: str
    result: str  # archived | would_archive | skipped
    reason: str
    events: int = 0
    url: str | None = None


_LOCK = "SELECT message_store.acquire_lock(%s)"
_HEAD = (
    "SELECT position, id::text FROM message_store.messages WHERE stream_name = %s"
    " ORDER BY position DESC LIMIT 1"
)
_DELETE = "DELETE FROM message_store.messages WHERE stream_name = ANY(%s)"


def snapshot_stream(stream: str) -> str:
    parsed = names.parse(stream)
    return names.build(parsed.category, *parsed.ids, types=(*parsed.types, SNAPSHOT_TYPE))


def archive_thread(
    store: MessageStore,
    objects: ObjectStore,
    stream: str,
    now: datetime,
    *,
    idle_since: datetime | None = None,
    policy: Policy | None = None,
    dry_run: bool = False,
) -> Outcome:
    """Export, verify, record and delete one thread (see the module's docstring)."""
    thread_id = str(names.thread_id_of(stream))
    rows = read_rows(store, stream)
    if not rows:
        return Outcome(stream, "skipped", "no events")
    if idle_since is not None and _utc(rows[-1].time) >= idle_since:
        return Outcome(stream, "skipped", "active again", len(rows))
    events = from_messages([row.message(stream) for row in rows])
    decision = project_next_step(events, now, policy)
    if decision.kind not in ARCHIVABLE:
        return Outcome(stream, "skipped", f"needs a step ({decision.kind.value})", len(rows))
    state = project_session_state(events)
    owner = rows[0].data.get("owner") if isinstance(rows[0].data, dict) else None
    if rows[0].type != "SessionStarted" or not isinstance(owner, str):
        return Outcome(stream, "skipped", "no SessionStarted with an owner", len(rows))
    body = export(rows)
    sha = digest(body)
    name = f"{stream}/{rows[-1].position:010d}-{sha[:16]}.jsonl"
    if dry_run:
        return Outcome(stream, "would_archive", decision.kind.value, len(rows), objects.url(name))
    objects.create(name, body)  # an existing object of this name holds these same bytes
    verify(objects, name, body, rows)
    marker = ThreadArchived(
        thread_id=thread_id,
        stream_name=stream,
        url=objects.url(name),
        events=len(rows),
        sha256=sha,
        last_position=rows[-1].position,
        last_id=rows[-1].id,
        title=state.title,
        status=_listed_status(rows[-1].type, state.status),
        created_at=rows[0].time,  # as Message DB keeps times: UTC, without a zone
        last_activity_at=rows[-1].time,
    )
    recorded = to_message(
        marker,
        Metadata(user_id=owner, correlation_stream_name=stream),
        id=message_id(stream, f"archived/{rows[-1].position}/{sha[:16]}"),
    )
    with contextlib.suppress(DuplicateMessageError):  # recorded by an earlier, interrupted run
        store.write_message(
            recorded.id, index_stream(owner), recorded.type, recorded.data, recorded.metadata
        )
    with store.connection() as conn, conn.transaction():
        conn.execute(_LOCK, (stream,))
        head = conn.execute(_HEAD, (stream,)).fetchone()
        if head is None or (int(head[0]), str(head[1])) != (rows[-1].position, rows[-1].id):
            return Outcome(stream, "skipped", "moved on while archiving", len(rows))
        conn.execute(_DELETE, ([stream, snapshot_stream(stream)],))
    return Outcome(stream, "archived", decision.kind.value, len(rows), marker.url)


def _listed_status(last_type: str, projected: str) -> str:
    return projected if last_type == "SessionCompleted" else "active"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- finding idle threads -------------------------------------------------------------------
#
# A loose index scan over Message DB's `messages_stream` index (stream_name, position): the
# recursive query hops from one stream name to the next (one index descent each) within the
# names that can be threads, and reads each stream's last message (one more descent). Its cost
# grows with the number of streams in that range (threads and their snapshot streams), not
# with the number of events, and it needs no index of its own; grouping `messages` by
# stream_name would read every event of every thread. The range [thread, threae) holds every
# name that starts with "thread" in the C collation and in linguistic ones alike; the category
# test keeps only thread streams.

_IDLE = """
WITH RECURSIVE streams(name) AS (
  SELECT min(stream_name) FROM message_store.messages
   WHERE stream_name > %(after)s AND stream_name < 'threae'
  UNION ALL
  SELECT (SELECT min(m.stream_name) FROM message_store.messages m
           WHERE m.stream_name > streams.name AND m.stream_name < 'threae')
    FROM streams WHERE streams.name IS NOT NULL
)
SELECT s.name, head.time
  FROM streams s
 CROSS JOIN LATERAL (
   SELECT m.time FROM message_store.messages m
    WHERE m.stream_name = s.name ORDER BY m.position DESC LIMIT 1
 ) AS head
 WHERE s.name IS NOT NULL
   AND message_store.category(s.name) ~ '^thread(_[0-9a-f]{2})?$'
   AND head.time < %(cutoff)s
 LIMIT %(batch)s
"""


def idle_threads(
    store: MessageStore, idle_since: datetime, *, batch: int = 500
) -> Iterator[tuple[str, datetime]]:
    """(stream, time of its last event) of every thread stream idle since before
    `idle_since`, in stream-name order, `batch` streams a query."""
    after = "thread"
    cutoff = idle_since.astimezone(UTC).replace(tzinfo=None)
    while True:
        with store.connection() as conn:
            found = conn.execute(
                _IDLE, {"after": after, "cutoff": cutoff, "batch": batch}
            ).fetchall()
        for name, time in found:
            try:
                names.thread_id_of(name)
            except names.InvalidStreamName:
                continue
            yield name, _utc(time)
        if len(found) < batch:
            return
        after = found[-1][0]


@dataclass(frozen=True, slots=True)
class Summary:
    outcomes: list[Outcome]

    def count(self, result: str) -> int:
        return sum(1 for o in self.outcomes if o.result == result)


def archive_idle(
    store: MessageStore,
    objects: ObjectStore,
    now: datetime,
    idle_days: float,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    policy: Policy | None = None,
    progress: Any = None,
) -> Summary:
    """Archive (or with `dry_run` only list) up to `limit` threads idle for `idle_days`.

    A thread that cannot be archived (work pending, an archive fault) is reported and
    skipped; the others go on."""
    idle_since = now - timedelta(days=idle_days)
    outcomes: list[Outcome] = []
    done = 0
    for stream, _ in idle_threads(store, idle_since):
        if limit is not None and done >= limit:
            break
        try:
            outcome = archive_thread(
                store, objects, stream, now, idle_since=idle_since, policy=policy, dry_run=dry_run
            )
        except ArchiveError as exc:
            outcome = Outcome(stream, "failed", str(exc))
        outcomes.append(outcome)
        if outcome.result in ("archived", "would_archive"):
            done += 1
        if progress is not None:
            progress(outcome)
    return Summary(outcomes)


# -- restoring ------------------------------------------------------------------------------


def archived_marker(
    store: MessageStore, owner: str, candidates: tuple[str, ...]
) -> ThreadArchived | None:
    """The newest `ThreadArchived` of one of `candidates` in the owner's index, or None."""
    found: ThreadArchived | None = None
    for message in store.read_stream(index_stream(owner)):
        if message.type != ThreadArchived.type:
            continue
        event = from_message(message).event
        if isinstance(event, ThreadArchived) and event.stream_name in candidates:
            found = event
    return found


_FIRST = (
    "SELECT id::text FROM message_store.messages WHERE stream_name = %s ORDER BY position LIMIT 1"
)
_INSERT = """
INSERT INTO message_store.messages (id, stream_name, position, time, type, data, metadata)
SELECT m.id::uuid, %s, m.position, m.time, m.type, m.data::jsonb, m.metadata::jsonb
  FROM unnest(%s::text[], %s::bigint[], %s::timestamp[], %s::text[], %s::text[], %s::text[])
       WITH ORDINALITY AS m(id, position, time, type, data, metadata, n)
 ORDER BY m.n
"""


def restore(store: MessageStore, marker: ThreadArchived) -> bool:
    """Put an archived thread back; False when it was back already (a concurrent restore).

    Raises ArchiveCorrupted for an export that is not what the marker recorded, and
    ArchiveError when the archive cannot be read; nothing is written then."""
    objects, name = located(marker.url)
    body = objects.read(name)
    if digest(body) != marker.sha256:
        raise ArchiveCorrupted(
            f"The archived copy {marker.url} of {marker.stream_name} has changed since it was "
            f"written (SHA-256 {digest(body)[:16]}…, recorded {marker.sha256[:16]}…); "
            "nothing was restored."
        )
    rows = parse_export(body)
    if len(rows) != marker.events or [r.position for r in rows] != list(range(len(rows))):
        raise ArchiveCorrupted(
            f"The archived copy {marker.url} does not hold {marker.events} consecutive events; "
            "nothing was restored."
        )
    stream = marker.stream_name
    with store.connection() as conn, conn.transaction():
        conn.execute(_LOCK, (stream,))
        first = conn.execute(_FIRST, (stream,)).fetchone()
        if first is not None:
            if str(first[0]) == rows[0].id:
                return False
            raise ArchiveError(
                f"{stream} has events that are not its archived ones; restore it by hand."
            )
        conn.execute(
            _INSERT,
            (
                stream,
                [r.id for r in rows],
                [r.position for r in rows],
                [r.time.replace(tzinfo=None) for r in rows],
                [r.type for r in rows],
                [None if r.data is None else orjson.dumps(r.data).decode() for r in rows],
                [None if r.metadata is None else orjson.dumps(r.metadata).decode() for r in rows],
            ),
        )
    return True


def restore_if_archived(store: MessageStore, owner: str, candidates: tuple[str, ...]) -> str | None:
    """The stream of an archived thread of `owner`, restored; None when none is archived."""
    marker = archived_marker(store, owner, candidates)
    if marker is None:
        return None
    restore(store, marker)
    return marker.stream_name
