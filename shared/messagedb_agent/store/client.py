"""A thin Python twin of Message DB's server functions over a psycopg 3 connection pool.

Each method is named after the SQL function it calls and takes its arguments in the same
order; nothing Message DB already does in SQL (locking, version checks, category parsing) is
redone here. Connections run in autocommit mode so a single write is one round trip and one
commit, exactly like a raw `SELECT message_store.write_message(...)`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import orjson
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from messagedb_agent.store import stream_name as names
from messagedb_agent.store.diagnosis import (
    describe_connect_failure,
    duplicate_id,
    one_line,
    redact,
    write_error,
)
from messagedb_agent.store.errors import (
    StoreError,
    StoreUnavailableError,
)
from messagedb_agent.store.message import MessageData, NewMessage

SEARCH_PATH_OPTION = "-c search_path=message_store,public"
DEFAULT_BATCH_SIZE = 1000

_WRITE = "SELECT message_store.write_message(%s, %s, %s, %s::jsonb, %s::jsonb, %s)"
# A batch in one statement: its rows are written in array order (a function scan of `unnest`
# yields them so), in the statement's own transaction, which is one round trip and one
# commit. One text for every batch size, so it is prepared once. The arrays go in binary
# (`%b`): the text form escapes every element, which costs milliseconds for large payloads.
_WRITE_BATCH = (
    "SELECT message_store.write_message(m.id, %s, m.type, m.data::jsonb, m.metadata::jsonb, m.ev)"
    " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[])"
    " AS m(id, type, data, metadata, ev)"
)
# A small batch as one row of calls, written left to right (PostgreSQL evaluates a target list
# in order; with `expected_version` the versions would refuse any other order anyway): for the
# two or three messages a step writes this is cheaper than `unnest`, whose arrays cost more to
# send and to take apart. One statement text per size, each prepared once.
SMALL_BATCH = 8
_CALL = "message_store.write_message(%s, %s, %s, %s::jsonb, %s::jsonb, %s)"
_WRITE_ROW = {size: "SELECT " + ", ".join([_CALL] * size) for size in range(1, SMALL_BATCH + 1)}
# A write whose commit does not wait for the WAL flush (see `durable`): `set_config(...,
# true)` is `SET LOCAL` as a function, so it holds for this statement's own transaction only
# and the write stays one statement, one round trip.
_LAZY = "SELECT set_config('synchronous_commit', 'off', true), w.* FROM ({}) AS w"
_GET_STREAM = "SELECT * FROM message_store.get_stream_messages(%s, %s, %s, %s)"
_GET_CATEGORY = "SELECT * FROM message_store.get_category_messages(%s, %s, %s, %s, %s, %s, %s)"
_GET_LAST = "SELECT * FROM message_store.get_last_stream_message(%s, %s)"
# A stream's last message, then another stream from the position that message records in its
# data (a position that is not a JSON non-negative integer reads nothing: COALESCE in Message DB
# would turn a NULL into 0, the whole stream).
_LAST_THEN_STREAM = (
    "WITH last AS (SELECT * FROM message_store.get_last_stream_message(%s, NULL::varchar))"
    " SELECT 0 AS part, last.* FROM last"
    " UNION ALL"
    " SELECT 1, m.* FROM last"
    " CROSS JOIN LATERAL (SELECT (last.data::jsonb -> %s) AS at) AS recorded"
    " CROSS JOIN LATERAL message_store.get_stream_messages(%s,"
    " CASE WHEN jsonb_typeof(recorded.at) = 'number' AND recorded.at::text ~ '^[0-9]{1,18}$'"
    " THEN recorded.at::text::bigint ELSE 9223372036854775807 END, %s, NULL::varchar) AS m"
    " ORDER BY part, position"
)
_STREAM_ENDS = (
    "SELECT s.name, 'first' AS part, m.* FROM unnest(%s::varchar[]) AS s(name)"
    " CROSS JOIN LATERAL message_store.get_stream_messages(s.name, 0, %s, NULL::varchar) AS m"
    " UNION ALL"
    " SELECT s.name, 'last', m.* FROM unnest(%s::varchar[]) AS s(name)"
    " CROSS JOIN LATERAL message_store.get_last_stream_message(s.name, NULL::varchar) AS m"
)
_STREAM_VERSION = "SELECT message_store.stream_version(%s)"

# The pool warns about each failed connection attempt; every failure that matters reaches the
# caller as a one-line StoreError, so without logging configured those lines are only noise
# (a NullHandler keeps Python's last-resort handler from printing them; configured handlers
# still receive them).
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

# How long a store that could not reach its database refuses at once, before one call is let
# through to find out whether it is back.
FAIL_FAST_SECONDS = 1.0
# SQLSTATEs that mean the connection or the server is gone, not that a statement failed:
# class 08 (connection exception) and 57P01-57P03 (the server shutting down or starting up).
_SERVER_GONE = ("08", "57P01", "57P02", "57P03")


class _Circuit:
    """Remembers that the database is down, so callers are refused at once instead of each
    waiting out the pool's timeout; one call at a time probes once the pause is over."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._reason = ""
        self._probing = False

    def enter(self) -> None:
        if not self._down_until:
            return  # the database is up: no lock on the path every call takes
        with self._lock:
            if not self._down_until:
                return
            if time.monotonic() < self._down_until or self._probing:
                raise StoreUnavailableError(self._reason)
            self._probing = True  # this caller finds out; the others are refused meanwhile

    def succeeded(self) -> None:
        if self._down_until:
            with self._lock:
                self._down_until, self._probing = 0.0, False

    def failed(self, reason: str) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.pause
            self._reason, self._probing = reason, False

    def explain(self, reason: str) -> None:
        """A better reason, found after the fact, for an outage that still lasts."""
        with self._lock:
            if self._down_until:
                self._reason = reason

    def released(self) -> None:
        """The probe ended without telling either way (a statement error): let another try."""
        if self._probing:
            with self._lock:
                self._probing = False

    @property
    def down(self) -> str | None:
        """Why the database is known to be down, or None."""
        return self._reason if self._down_until else None


def _server_gone(exc: psycopg.OperationalError) -> bool:
    state = exc.sqlstate
    return state is None or state.startswith(_SERVER_GONE)


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    message_store_version: str | None
    server_version: str | None
    detail: str


class MessageStore:
    """A pooled client; use as a context manager, or call `close()` when done."""

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 1,
        max_size: int = 5,
        timeout: float = 10.0,
        wait_timeout: float | None = None,
        name: str = "messagedb-agent",
        connection_class: type[psycopg.Connection[Any]] = psycopg.Connection,
        options: str | None = SEARCH_PATH_OPTION,
    ) -> None:
        """`timeout` bounds opening a connection; `wait_timeout` (default the same) how long
        a call waits for one from the pool before the database counts as unavailable.
        `options` is libpq's startup option; None sends none, for a pooler that refuses them
        (the database role's own search_path then applies: deploy/database_users.py)."""
        self.conninfo = conninfo
        self._connection_class = connection_class
        self._wait = timeout if wait_timeout is None else wait_timeout
        self._circuit = _Circuit(FAIL_FAST_SECONDS)
        self._pool = ConnectionPool(
            conninfo,
            connection_class=connection_class,
            min_size=min_size,
            max_size=max_size,
            timeout=self._wait,
            open=False,
            name=name,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, int(timeout)),
                **({} if options is None else {"options": options}),
            },
        )
        self._timeout = timeout

    @property
    def closed(self) -> bool:
        return bool(self._pool.closed)

    def dedicated_connection(self) -> psycopg.Connection[Any]:
        """A new autocommit connection outside the pool, made as the pool makes its own: for
        a session that must stay open, such as one that LISTENs."""
        kwargs = self._pool.kwargs
        assert isinstance(kwargs, dict)  # a mapping here, as __init__ gives it
        return self._connection_class.connect(self.conninfo, **kwargs)

    def open(self) -> Self:
        try:
            self._pool.open(wait=True, timeout=self._timeout)
        except PoolTimeout as exc:
            # Close it, or the pool's workers keep retrying the connection in the background.
            self._pool.close()
            raise StoreUnavailableError(
                describe_connect_failure(self.conninfo, self._connection_class)
            ) from exc
        return self

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- health -----------------------------------------------------------------------------

    def health(self) -> Health:
        """Round-trip the database and Message DB; never raises, so probes can report it.

        While the database is known to be down this answers at once with the reason."""
        try:
            with self._connection() as conn:
                row = conn.execute(
                    "SELECT message_store.message_store_version(), current_setting('server_version')"
                ).fetchone()
        except StoreError as exc:
            return Health(False, None, None, str(exc))
        assert row is not None
        return Health(True, row[0], row[1], "ok")

    def message_store_version(self) -> str:
        with self._connection() as conn:
            row = conn.execute("SELECT message_store.message_store_version()").fetchone()
        assert row is not None
        return str(row[0])

    # -- writing ----------------------------------------------------------------------------

    def write_message(
        self,
        id: str | None,
        stream_name: str,
        type: str,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        expected_version: int | None = None,
    ) -> int:
        """Append one message; returns its position in the stream."""
        names.validate(stream_name)
        message_id = id or str(uuid.uuid4())
        params = (
            message_id,
            stream_name,
            type,
            _json(data),
            None if metadata is None else _json(metadata),
            expected_version,
        )
        with self._connection() as conn:
            try:
                row = conn.execute(_WRITE, params).fetchone()
            except psycopg.Error as exc:
                raise write_error(exc, message_id, stream_name) from exc
        assert row is not None
        return int(row[0])

    def write_messages(
        self,
        stream_name: str,
        messages: Sequence[NewMessage],
        expected_version: int | None = None,
        *,
        durable: bool = True,
    ) -> int:
        """Append several messages atomically: all or none, at consecutive positions.

        With `expected_version`, message i is written expecting version `expected_version + i`,
        so a concurrent writer makes the whole batch fail. The batch is one statement calling
        `write_message` once per message (a row of calls for a small batch, `unnest` over
        arrays for a large one), so it costs one round trip and one commit, like a single
        write (a pipelined BEGIN, writes, COMMIT cost measurably more per commit).

        `durable=False` commits without waiting for the WAL flush (`synchronous_commit=off`,
        set for this statement's transaction only): for what can be rebuilt from the log
        (snapshots), never for events. A crash may lose the last such writes; it cannot
        corrupt them.
        Returns the last position written.
        """
        names.validate(stream_name)
        if not messages:
            raise ValueError("write_messages needs at least one message")
        if len(messages) == 1 and durable:
            only = messages[0]
            return self.write_message(
                only.id, stream_name, only.type, only.data, only.metadata, expected_version
            )
        ids = [message.id or str(uuid.uuid4()) for message in messages]
        query: str
        params: tuple[Any, ...]
        if len(messages) <= SMALL_BATCH:
            query = _WRITE_ROW[len(messages)]
            params = tuple(
                value
                for index, message in enumerate(messages)
                for value in (
                    ids[index],
                    stream_name,
                    message.type,
                    _json(message.data),
                    None if message.metadata is None else _json(message.metadata),
                    None if expected_version is None else expected_version + index,
                )
            )
        else:
            query = _WRITE_BATCH
            params = (
                stream_name,
                ids,
                [message.type for message in messages],
                [_json(message.data) for message in messages],
                [None if m.metadata is None else _json(m.metadata) for m in messages],
                [
                    None if expected_version is None else expected_version + i
                    for i in range(len(ids))
                ],
            )
        if not durable:
            query = _LAZY.format(query)
        with self._connection() as conn:
            try:
                rows = conn.execute(query, params).fetchall()
            except psycopg.Error as exc:
                raise write_error(exc, _named_id(exc, ids), stream_name) from exc
        return int(rows[-1][-1])

    # -- reading ----------------------------------------------------------------------------

    def get_stream_messages(
        self,
        stream_name: str,
        position: int = 0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        condition: str | None = None,
    ) -> list[MessageData]:
        """One batch of a stream from `position` on (Message DB caps it at `batch_size`).

        `condition` is Message DB's raw SQL filter; it is only honoured when the server sets
        `message_store.sql_condition`, and must never carry user input.
        """
        names.validate(stream_name)
        with self._connection() as conn:
            rows = conn.execute(_GET_STREAM, (stream_name, position, batch_size, condition))
            return [MessageData(*row) for row in rows.fetchall()]

    def read_stream(
        self, stream_name: str, position: int = 0, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[MessageData]:
        """The whole stream from `position` on, paging through batches on one connection.

        Each page asks for one message more than `batch_size`, so a short page proves the end
        of the stream and a stream that fits one batch costs one round trip, not two.
        """
        names.validate(stream_name)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        messages: list[MessageData] = []
        with self._connection() as conn:
            while True:
                rows = conn.execute(
                    _GET_STREAM, (stream_name, position, batch_size + 1, None)
                ).fetchall()
                messages.extend(MessageData(*row) for row in rows)
                if len(rows) <= batch_size:
                    return messages
                position = messages[-1].position + 1

    def read_after_last(
        self,
        last_of: str,
        stream_name: str,
        position_field: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> tuple[MessageData | None, list[MessageData]]:
        """The last message of `last_of`, and `stream_name` from the position that message's
        data holds under `position_field`, in one round trip: Eventide's snapshot read (an
        entity's snapshot, then its events from the snapshot's version on). No last message,
        or no position in it, reads no stream; a rest longer than a batch is paged as
        `read_stream` pages."""
        names.validate(last_of)
        names.validate(stream_name)
        with self._connection() as conn:
            rows = conn.execute(
                _LAST_THEN_STREAM, (last_of, position_field, stream_name, batch_size + 1)
            ).fetchall()
        last = next((MessageData(*row[1:]) for row in rows if row[0] == 0), None)
        after = [MessageData(*row[1:]) for row in rows if row[0] == 1]
        if len(after) > batch_size:
            after.extend(self.read_stream(stream_name, after[-1].position + 1, batch_size))
        return last, after

    def get_last_stream_message(
        self, stream_name: str, type: str | None = None
    ) -> MessageData | None:
        names.validate(stream_name)
        with self._connection() as conn:
            row = conn.execute(_GET_LAST, (stream_name, type)).fetchone()
        return None if row is None else MessageData(*row)

    def stream_ends(
        self, stream_names: Sequence[str], first: int = 2
    ) -> dict[str, tuple[list[MessageData], MessageData]]:
        """For each stream that has messages: its first `first` messages and its last one,
        in one round trip however many streams there are (through Message DB's own read
        functions, laterally joined over the names)."""
        for name in stream_names:
            names.validate(name)
        if not stream_names:
            return {}
        with self._connection() as conn:
            rows = conn.execute(_STREAM_ENDS, (list(stream_names), first, list(stream_names)))
            found: dict[str, tuple[list[MessageData], MessageData]] = {}
            starts: dict[str, list[MessageData]] = {}
            for row in rows.fetchall():
                name, part, *message = row
                if part == "first":
                    starts.setdefault(name, []).append(MessageData(*message))
                else:
                    found[name] = ([], MessageData(*message))
        return {name: (starts.get(name, []), last) for name, (_, last) in found.items()}

    def stream_version(self, stream_name: str) -> int | None:
        """Position of the stream's last message; None for a stream with no messages."""
        names.validate(stream_name)
        with self._connection() as conn:
            row = conn.execute(_STREAM_VERSION, (stream_name,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def get_category_messages(
        self,
        category: str,
        position: int = 1,
        batch_size: int = DEFAULT_BATCH_SIZE,
        correlation: str | None = None,
        consumer_group_member: int | None = None,
        consumer_group_size: int | None = None,
        condition: str | None = None,
    ) -> list[MessageData]:
        """One batch of a category from a global position, as a consumer reads it."""
        names.validate_category(category)
        if correlation is not None:
            names.validate_category(correlation)
        if (consumer_group_member is None) != (consumer_group_size is None):
            raise ValueError("consumer_group_member and consumer_group_size go together")
        if (
            consumer_group_size is not None
            and consumer_group_member is not None
            and not (0 <= consumer_group_member < consumer_group_size)
        ):
            raise ValueError("consumer_group_member must be in [0, consumer_group_size)")
        params = (
            category,
            position,
            batch_size,
            correlation,
            consumer_group_member,
            consumer_group_size,
            condition,
        )
        with self._connection() as conn:
            try:
                rows = conn.execute(_GET_CATEGORY, params).fetchall()
            except psycopg.errors.RaiseException as exc:
                raise StoreError(one_line(exc)) from exc
        return [MessageData(*row) for row in rows]

    def read_category(
        self,
        category: str,
        position: int = 1,
        batch_size: int = DEFAULT_BATCH_SIZE,
        correlation: str | None = None,
        consumer_group_member: int | None = None,
        consumer_group_size: int | None = None,
    ) -> Iterator[MessageData]:
        """Every message of a category from `position` on, fetched batch by batch."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        while True:
            batch = self.get_category_messages(
                category,
                position,
                batch_size,
                correlation,
                consumer_group_member,
                consumer_group_size,
            )
            yield from batch
            if len(batch) < batch_size:
                return
            position = batch[-1].global_position + 1

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; any database failure inside leaves as a one-line StoreError.

        The pool raises `PoolTimeout` only on entering its context manager, so the conversion
        has to wrap the whole block, not the call that creates it. A database found down
        trips the circuit: for the next `FAIL_FAST_SECONDS` calls are refused without waiting
        (an API answers 503 at once instead of after the pool's timeout), then one call probes.
        A pool that is merely busy (every connection in use) is refused but trips nothing.
        """
        self._circuit.enter()
        try:
            with self._pool.connection(timeout=self._wait) as conn:
                yield conn
        except PoolTimeout as exc:
            if self._pool.get_stats().get("pool_size", 0) >= self._pool.max_size:
                self._circuit.released()
                raise StoreUnavailableError(
                    f"the database is busy: all {self._pool.max_size} connections of this "
                    f"process stayed in use for {self._wait:g} s"
                ) from exc
            reason = (
                f"cannot reach PostgreSQL at {redact(self.conninfo)}: no connection within "
                f"{self._wait:g} s"
            )
            self._circuit.failed(reason)
            self._diagnose()
            raise StoreUnavailableError(reason) from exc
        except StoreUnavailableError as exc:  # a write's own conversion of a lost connection
            cause = exc.__cause__
            if isinstance(cause, psycopg.OperationalError) and _server_gone(cause):
                self._circuit.failed(str(exc))
            else:
                self._circuit.released()
            raise
        except psycopg.OperationalError as exc:
            if _server_gone(exc):
                self._circuit.failed(one_line(exc))
            else:
                self._circuit.released()
            raise StoreUnavailableError(one_line(exc)) from exc
        except psycopg.Error as exc:
            self._circuit.released()
            raise StoreError(one_line(exc)) from exc
        except BaseException:
            self._circuit.released()
            raise
        self._circuit.succeeded()

    def _diagnose(self) -> None:
        """Find out why in the background (a direct connection attempt may hang for seconds
        on a silent network) and let later refusals say it; the caller is not kept waiting."""

        def explain() -> None:
            self._circuit.explain(describe_connect_failure(self.conninfo, self._connection_class))

        threading.Thread(target=explain, name="store-diagnosis", daemon=True).start()

    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A pooled connection for callers with SQL of their own (the rate limiter, the
        benchmarks): the same timeouts, failure conversion and fail-fast as every method."""
        return self._connection()

    @contextmanager
    def transaction(self) -> Iterator[MessageStore]:
        """Writes and statements of the caller's own that commit together or not at all: a
        `MessageStore` bound to one connection inside one transaction (`store/transaction.py`),
        committed when the block ends, rolled back when an exception leaves it."""
        from messagedb_agent.store.transaction import Transaction

        with self._connection() as conn, conn.transaction():
            bound = Transaction(self, conn)
            yield bound
            bound.check()

    @property
    def unavailable(self) -> str | None:
        """Why the database is known to be down right now, or None."""
        return self._circuit.down

    @property
    def pool(self) -> ConnectionPool:
        return self._pool


def _named_id(exc: psycopg.Error, ids: list[str]) -> str:
    """The id of a batch a failure is about: the one it quotes, else the last one."""
    named = duplicate_id(exc)
    if named is not None:
        return named
    text = str(exc)
    return next((id_ for id_ in ids if f'"{id_}"' in text), ids[-1])


def _json(value: dict[str, Any]) -> str:
    """JSON text PostgreSQL's jsonb accepts: it refuses NUL, so NUL becomes U+FFFD.

    Only payloads that contain a NUL pay for the rewrite; the check is a substring search.
    """
    text = orjson.dumps(value).decode()
    if "\\u0000" not in text:
        return text
    return orjson.dumps(_without_nul(value)).decode()


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value
