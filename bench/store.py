"""Store benchmark: the project's write and read paths against raw Message DB calls.

Both run in one process, against the same server, over the same connection (the project's
pool is sized to one connection and the raw statements run on that very connection), with
the two measured in alternating blocks so that drift in the machine hits both alike.

Prints appends/s and p50/p99 for the project's append (event -> mapper -> `write_message`
with `expected_version`) and for a raw `SELECT message_store.write_message(...)`, and the
same for reading a 1,000-event stream whole, with the ratios.

Env: N (2000 appends each), READS (200 full reads each), BLOCK (50), STREAM_LEN (1000)
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import orjson

from _common import Figures, bench_database, ratio_line, row, timed
from messagedb_agent import events as ev
from messagedb_agent.store.client import MessageStore

N = int(os.environ.get("N", "2000"))
READS = int(os.environ.get("READS", "200"))
BLOCK = int(os.environ.get("BLOCK", "50"))
STREAM_LEN = int(os.environ.get("STREAM_LEN", "1000"))

RAW_WRITE = "SELECT message_store.write_message(%s, %s, %s, %s::jsonb, %s::jsonb, %s)"
RAW_READ = "SELECT * FROM message_store.get_stream_messages(%s, %s, %s)"


def main() -> None:
    url = bench_database("bench_store")
    print(f"store benchmark: N={N} appends, {READS} reads of a {STREAM_LEN}-event stream")
    with MessageStore(url, min_size=1, max_size=1) as store:
        with store.pool.connection() as conn:
            conn.execute("SELECT 1")  # the one pooled connection, also used for raw calls
        writes(store)
        reads(store)


def writes(store: MessageStore) -> None:
    raw_ms: list[float] = []
    ours_ms: list[float] = []
    raw_versions: dict[str, int] = {}
    our_versions: dict[str, int] = {}
    streams = [f"thread-{uuid.uuid4()}" for _ in range(20)]
    raw_streams = [f"thread-{uuid.uuid4()}" for _ in range(20)]
    meta = ev.Metadata(user_id="bench-user", correlation_stream_name=streams[0])
    message = ev.UserMessageAdded(message="add a task to buy milk and then tell me the time")
    data = orjson.dumps(message.model_dump(mode="json")).decode()
    meta_json = orjson.dumps({**meta.to_json(), "schemaVersion": 1}).decode()

    def raw_one(i: int) -> None:
        stream = raw_streams[i % len(raw_streams)]
        expected = raw_versions.get(stream, -1)
        with store.pool.connection() as conn:
            conn.execute(
                RAW_WRITE,
                (str(uuid.uuid4()), stream, "UserMessageAdded", data, meta_json, expected),
            ).fetchone()
        raw_versions[stream] = expected + 1

    def ours_one(i: int) -> None:
        stream = streams[i % len(streams)]
        expected = our_versions.get(stream, -1)
        new = ev.to_message(message, meta)
        our_versions[stream] = store.write_message(
            None, stream, new.type, new.data, new.metadata, expected
        )

    for i in range(20):  # warm-up, and past psycopg's auto-prepare threshold
        raw_one(i)
        ours_one(i)
    i = 20
    while len(raw_ms) < N:
        for _ in range(BLOCK):
            raw_ms.append(timed(lambda i=i: raw_one(i)))
            i += 1
        for _ in range(BLOCK):
            ours_ms.append(timed(lambda i=i: ours_one(i)))
            i += 1
    raw, ours = Figures(raw_ms), Figures(ours_ms)
    print("\nappend one event (expected_version, one commit each)")
    print(row("raw SELECT message_store.write_message", raw))
    print(row("project: event -> mapper -> write_message", ours))
    print(ratio_line("ratio project / raw", ours, raw, 1.2))


def reads(store: MessageStore) -> None:
    stream = f"thread-{uuid.uuid4()}"
    meta = ev.Metadata(user_id="bench-user", correlation_stream_name=stream)
    batch = [
        ev.to_message(ev.UserMessageAdded(message=f"message number {n} " + "x" * 80), meta)
        for n in range(STREAM_LEN)
    ]
    for start in range(0, STREAM_LEN, 500):
        store.write_messages(stream, batch[start : start + 500])

    def raw_read() -> None:
        with store.pool.connection() as conn:
            rows = conn.execute(RAW_READ, (stream, 0, STREAM_LEN)).fetchall()
        assert len(rows) == STREAM_LEN

    def our_read() -> None:
        assert len(store.read_stream(stream)) == STREAM_LEN

    def typed_read() -> None:
        assert len(ev.from_messages(store.read_stream(stream))) == STREAM_LEN

    for _ in range(10):
        raw_read()
        our_read()
        typed_read()
    raw_ms: list[float] = []
    ours_ms: list[float] = []
    typed_ms: list[float] = []
    block = max(1, BLOCK // 5)
    while len(raw_ms) < READS:
        for _ in range(block):
            raw_ms.append(timed(raw_read))
        for _ in range(block):
            ours_ms.append(timed(our_read))
        for _ in range(block):
            typed_ms.append(timed(typed_read))
    raw, ours, typed = Figures(raw_ms), Figures(ours_ms), Figures(typed_ms)
    print(f"\nread a {STREAM_LEN}-event stream whole")
    print(row("raw get_stream_messages (rows, JSON as text)", raw))
    print(row("project read_stream (rows, JSON decoded lazily)", ours))
    print(row("project read_stream + typed events (all decoded)", typed))
    print(ratio_line("ratio read_stream / raw", ours, raw, 1.2))
    print(
        f"  {'ratio read_stream + typed events / raw':<44} {typed.p50 / raw.p50:5.2f}x  (decoding cost, for reference)"
    )


if __name__ == "__main__":
    main()
