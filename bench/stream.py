"""Live stream benchmark: how soon a thread's events and the model's text reach a client.

The local stack (`messagedb_agent.stack.LocalStack`: Message DB on the embedded server, ingest,
relay and step under functions-framework, the offline model streaming a word every
OFFLINE_WORD_DELAY_MS) serves `GET /v1/threads/{id}/stream`; this process reads the streams over
plain HTTP/1.1 sockets, all of them in one selector loop that notes when each chunk arrives.

What is measured, in one run (every time is this process's `perf_counter`: the writers, the
baseline listener and the stream reader share one clock):
- baseline: one `pg_notify` from a pooled connection to a psycopg connection that LISTENs on
  the channel, as the stream's own listener does (`store/signals.py`);
- event latency: an `LLMResponseReceived` appended with the store (`write_message`, one
  autocommit statement: its trigger's NOTIFY goes out when it commits) -> the SSE message that
  carries it, read by the client. The clock starts before the statement is sent, so the commit
  is inside; beside it, the same append -> a raw LISTEN on the trigger's channel. Also an event
  right behind the last text delta of its reply (as the step writes them: flush, then append),
  and a probe with the two committed together;
- delta latency: a text delta published by `DeltaPublisher` (one `pg_notify` on the thread's
  channel) -> its TEXT_MESSAGE_CONTENT at the client, with a raw listener on the same channel
  receiving the very same notification as the baseline; a reply's first words (the stream
  reads the log before them) and a later word apart;
- real turns: "what is 2+2" posted through the API with the stream open; each of the model's
  deltas and the reply's event, at the client against a raw listener on the same
  notifications, and the streamed text against the recorded one;
- concurrent streams one ingest process holds: N streams (25, 50, 100, ... up to MAX_STREAMS)
  each on its own thread and user, an event appended to each thread at a steady rate; the
  largest N whose delivery p99 stays <= 100 ms with nothing lost. Each open stream holds one
  of the server's threads (functions-framework runs gunicorn's gthread worker: one worker,
  THREADS threads), so the stack is started with THREADS=SERVER_THREADS;
- around opening and leaving: an event appended while its stream opens, a reply's first delta
  right after `: live`, and how long the server keeps a stream whose client has gone.

Targets: event p50 <= 20 ms, delta p50 <= 10 ms, concurrent delivery p99 <= 100 ms.
Streams the benchmark is done with are reset and sent one event, so the server frees them at
once. Writes the figures as JSON to $BENCH_OUT when set. `--help` lists the env knobs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).parent))

import httpx
import orjson
import psycopg

try:
    import psutil
except ImportError:  # the CPU columns are left out
    psutil = None

from _common import Figures, bench_database
from messagedb_agent import events as ev
from messagedb_agent.live import stream as live_stream
from messagedb_agent.live.deltas import DeltaPublisher, TextDelta, channel_of, decode, encode
from messagedb_agent.postgres.agent_schema import THREAD_EVENTS_CHANNEL
from messagedb_agent.settings import Settings
from messagedb_agent.stack import LocalStack, StackOptions
from messagedb_agent.stack import stack as stack_module
from messagedb_agent.stack.stack import LOCAL_WORD_DELAY_MS, Transport
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.signals import FALLBACK_SECONDS
from messagedb_agent.threads.commands import resolve_thread


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


SAMPLES = _int("SAMPLES", 200)
BASELINE_SAMPLES = _int("BASELINE_SAMPLES", 200)
OPEN_SAMPLES = _int("OPEN_SAMPLES", 20)
REAL_TURNS = _int("REAL_TURNS", 6)
MAX_STREAMS = _int("MAX_STREAMS", 800)
STREAM_RATE = _float("STREAM_RATE", 1.0)
STEP_SECONDS = _float("STEP_SECONDS", 6.0)
SERVER_THREADS = _int("SERVER_THREADS", MAX_STREAMS + 64)
WORD_DELAY_MS = _int("OFFLINE_WORD_DELAY_MS", LOCAL_WORD_DELAY_MS)
LEAVE_TIMEOUT = _float("LEAVE_TIMEOUT", 45.0)
STACK_TRANSPORT = os.environ.get("STACK_TRANSPORT", "local")
TRANSPORTS: dict[str, Transport] = {"local": "local", "emulator": "emulator", "auto": "auto"}


def _commit() -> str:
    """The checkout's commit (and whether it has changes), for the figures' context."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


COMMIT = _commit()


def _knob(name: str, default: object, text: str) -> str:
    return f"  {f'{name} [{default}]':<30} {text}"


KNOBS = "\n".join(
    [
        "environment (defaults in brackets):",
        _knob(
            "SAMPLES", SAMPLES, "latency samples per series (event, delta, event behind a delta)"
        ),
        _knob("BASELINE_SAMPLES", BASELINE_SAMPLES, "raw NOTIFY -> LISTEN round trips"),
        _knob(
            "OPEN_SAMPLES", OPEN_SAMPLES, "events appended while a stream opens (a new one each)"
        ),
        _knob("REAL_TURNS", REAL_TURNS, '"what is 2+2" turns through the stack, a stream open'),
        _knob("MAX_STREAMS", MAX_STREAMS, "concurrency steps double from 25 up to this many"),
        _knob("STREAM_RATE", STREAM_RATE, "events a second appended to each open stream's thread"),
        _knob("STEP_SECONDS", STEP_SECONDS, "how long each concurrency step appends"),
        _knob("SERVER_THREADS", SERVER_THREADS, "THREADS for the functions (gunicorn gthread: a"),
        _knob("", "", "request holds a thread, an open stream too); MAX_STREAMS + 64"),
        _knob("OFFLINE_WORD_DELAY_MS", WORD_DELAY_MS, "the offline model's pause before each word"),
        _knob("LEAVE_TIMEOUT", LEAVE_TIMEOUT, "how long to wait for the server to notice clients"),
        _knob("", "", "that left; 0 skips that check"),
        _knob("STACK_TRANSPORT", STACK_TRANSPORT, "local (built-in topic), emulator or auto"),
        _knob("DATABASE_URL", "", "a Message DB to use instead of a fresh embedded database"),
        _knob("BENCH_OUT", "", "write the figures there as JSON"),
    ]
).replace(" [] ", "    ")

EVENT_TARGET_MS = 20.0
DELTA_TARGET_MS = 10.0
CONCURRENT_P99_TARGET_MS = 100.0
WRITERS = 4  # threads appending the concurrency steps' events, so one slow commit delays few
WAIT_SECONDS = 5.0  # a sample not delivered by then counts as lost
PROBES = 10  # deltas committed with their event (each may take a fallback period)
OPEN_WAIT_SECONDS = 12.0  # the same, for an event appended while its stream opens
OPEN_TIMEOUT = 10.0  # a stream whose response has not started by then counts as refused
FUNCTION_ENV = {
    "MODEL_NAME": "offline",
    "GOOGLE_CLOUD_PROJECT": "",
    "RATE_LIMIT_PER_MINUTE": "0",  # off: hundreds of users open threads in a few seconds
    "OFFLINE_WORD_DELAY_MS": str(WORD_DELAY_MS),
    "THREADS": str(SERVER_THREADS),
}


# -- the client: SSE over raw sockets, read in one selector loop ---------------------------


class OpenFailed(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"stream refused: {status} {body[:200]}")
        self.status = status


class SseConnection:
    """One open stream: chunked transfer decoding, then SSE messages."""

    def __init__(self, sock: socket.socket, label: str) -> None:
        self.sock = sock
        self.label = label
        self.chunked = True
        self._raw = b""
        self._need: int | None = None
        self._body = b""
        self.closed_at: float | None = None
        self.abort = False
        self.finished: list[float] = []  # RUN_FINISHED arrivals

    def feed(self, data: bytes) -> list[bytes]:
        """The SSE blocks (messages and comments) completed by `data`."""
        if self.chunked:
            self._raw += data
            while True:
                if self._need is None:
                    end = self._raw.find(b"\r\n")
                    if end < 0:
                        break
                    size = int(self._raw[:end].split(b";")[0], 16)
                    self._raw = self._raw[end + 2 :]
                    if size == 0:
                        break
                    self._need = size
                if len(self._raw) < self._need + 2:
                    break
                self._body += self._raw[: self._need]
                self._raw = self._raw[self._need + 2 :]
                self._need = None
        else:
            self._body += data
        blocks = self._body.split(b"\n\n")
        self._body = blocks.pop()
        return [b for b in blocks if b]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.abort:  # a reset: the server's next write to it fails at once
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()


@dataclass
class Arrivals:
    """What the client saw, by AG-UI message id, each with the time its chunk arrived."""

    event: dict[str, float] = field(default_factory=dict)  # first message of its event
    live: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # deltas, in order
    text: dict[str, str] = field(default_factory=dict)  # all TEXT_MESSAGE_CONTENT, in order


class Reader:
    """Reads every open stream on one thread; a sample's arrival is the `recv` that brought
    the chunk completing its message."""

    def __init__(self) -> None:
        self.arrivals = Arrivals()
        self.cond = threading.Condition()
        self.connections: set[SseConnection] = set()
        self.closed: list[SseConnection] = []
        self._selector = selectors.DefaultSelector()
        self._pending: list[SseConnection] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sse-reader", daemon=True)
        self._thread.start()

    def add(self, conn: SseConnection) -> None:
        conn.sock.setblocking(False)
        with self.cond:
            self._pending.append(conn)
        self._wake_w.send(b"x")

    def remove(self, conn: SseConnection, abort: bool = False) -> None:
        """Close the client's side, on the reader thread; returns once it is closed. The
        server finds out when it next writes to the stream."""
        with self.cond:
            conn.abort = abort
            self._pending.append(conn)
            conn.closed_at = conn.closed_at or -1.0
        self._wake_w.send(b"x")
        self.wait(lambda: conn.sock.fileno() == -1, 2.0)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def record(self, conn: SseConnection, block: bytes, at: float) -> None:
        if block.startswith(b":"):
            return
        sse_id: str | None = None
        data: dict[str, Any] | None = None
        for line in block.split(b"\n"):
            if line.startswith(b"id: "):
                sse_id = line[4:].decode()
            elif line.startswith(b"data: "):
                data = orjson.loads(line[6:])
        if data is None:
            return
        kind = data.get("type")
        with self.cond:
            if kind == "RUN_FINISHED":
                conn.finished.append(at)
            message = data.get("messageId")
            if isinstance(message, str):
                found = self.arrivals
                # live text has no id, or a cursor into it (`12~40`); an event's, a position
                live = sse_id is None or "~" in sse_id
                if kind == "TEXT_MESSAGE_CONTENT":
                    found.text[message] = found.text.get(message, "") + data["delta"]
                    if live:
                        found.live.setdefault(message, []).append((at, data["delta"]))
                if not live and message not in found.event:
                    found.event[message] = at
            self.cond.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.1):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                    self._take_pending()
                    continue
                conn: SseConnection = key.data
                at = time.perf_counter()
                try:
                    data = conn.sock.recv(1 << 18)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._drop(conn, at)
                    continue
                for block in conn.feed(data):
                    self.record(conn, block, at)

    def _take_pending(self) -> None:
        with self.cond:
            pending, self._pending = self._pending, []
        for conn in pending:
            if conn.closed_at is not None:  # asked to close
                if conn in self.connections:
                    self._selector.unregister(conn.sock)
                    self.connections.discard(conn)
                conn.close()
            else:
                self._selector.register(conn.sock, selectors.EVENT_READ, conn)
                self.connections.add(conn)
        with self.cond:
            self.cond.notify_all()

    def _drop(self, conn: SseConnection, at: float) -> None:
        """The server ended the stream."""
        self._selector.unregister(conn.sock)
        self.connections.discard(conn)
        conn.closed_at = at
        conn.close()
        with self.cond:
            self.closed.append(conn)
            self.cond.notify_all()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in list(self.connections) + self._pending:
            conn.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


def open_stream(
    base_url: str,
    thread_id: str,
    token: str,
    reader: Reader,
    label: str,
    before_live: Callable[[], None] | None = None,
) -> tuple[SseConnection, float]:
    """GET the thread's stream; returns once its `: live` comment arrived (the replay is
    over), with the time that took. `before_live` runs right after the request is sent."""
    parts = urlsplit(base_url)
    start = time.perf_counter()
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    sock = socket.create_connection(address, timeout=OPEN_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = (
        f"GET /v1/threads/{thread_id}/stream HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    sock.sendall(request.encode())
    if before_live is not None:
        before_live()
    conn = SseConnection(sock, label)
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(65536)
        if not data:
            sock.close()
            raise OpenFailed(0, "connection closed before the response")
        head += data
    head, rest = head.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    if status != 200:
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        sock.close()
        raise OpenFailed(status, rest.decode(errors="replace"))
    conn.chunked = headers.get("transfer-encoding", "").lower() == "chunked"
    live = False
    data = rest
    while True:
        at = time.perf_counter()
        for block in conn.feed(data):
            if block.startswith(b": live"):
                live = True
            reader.record(conn, block, at)
        if live:
            break
        data = sock.recv(65536)
        if not data:
            sock.close()
            raise OpenFailed(200, "stream ended before it was live")
    opened = (time.perf_counter() - start) * 1000
    reader.add(conn)
    return conn, opened


# -- the baseline listener: a psycopg connection LISTENing, as StreamSignals does ----------


class RawListener:
    """LISTENs on `channels` on a connection of its own and notes each notification's arrival."""

    def __init__(self, url: str, channels: list[str]) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        for channel in channels:
            self.conn.execute(f"LISTEN {channel}")
        self.got: list[tuple[float, str, str]] = []
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raw-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for notify in self.conn.notifies(timeout=0.1):
                at = time.perf_counter()
                with self.cond:
                    self.got.append((at, notify.channel, notify.payload))
                    self.cond.notify_all()

    def first_after(
        self,
        channel: str,
        payload: str | Callable[[str], bool] | None,
        since: float,
        timeout: float = WAIT_SECONDS,
    ) -> float | None:
        """When the first notification on `channel` after `since` arrived whose payload is
        `payload` (or passes it, a test)."""

        def matches(text: str) -> bool:
            if payload is None:
                return True
            return payload(text) if callable(payload) else text == payload

        def found() -> float | None:
            hits = [
                at
                for at, name, text in self.got
                if at >= since and name == channel and matches(text)
            ]
            return hits[0] if hits else None

        with self.cond:
            self.cond.wait_for(lambda: found() is not None, timeout)
            return found()

    def clear(self) -> None:
        with self.cond:
            self.got.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.conn.close()


# -- where the CPU goes ------------------------------------------------------------------------


class CpuMeter:
    """CPU used by the ingest function (gunicorn's arbiter and worker), by the PostgreSQL
    backends connected to this benchmark's database, and by this process (the clients, the
    writer, the baseline listener), in % of one core; empty without psutil, and without the
    database's share when it is not the embedded server on this host."""

    def __init__(self, stack: LocalStack, store: MessageStore, local_database: bool) -> None:
        self.stack = stack
        self.store = store
        self.local_database = local_database

    def _groups(self) -> dict[str, list[Any]]:
        service = next(s for s in self.stack.services if s.name == "ingest")
        assert service.process is not None
        ingest = psutil.Process(service.process.pid)
        groups = {"ingest": [ingest, *ingest.children(recursive=True)]}
        if self.local_database:
            with self.store.connection() as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                ).fetchall()
            backends = []
            for (pid,) in rows:
                with contextlib.suppress(psutil.Error):
                    backends.append(psutil.Process(pid))
            groups["pg"] = backends
        groups["bench"] = [psutil.Process()]
        return groups

    @staticmethod
    def _seconds(processes: list[Any]) -> float:
        total = 0.0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def start(self) -> tuple[float, dict[str, tuple[list[Any], float]]]:
        if psutil is None:
            return time.perf_counter(), {}
        groups = self._groups()
        return time.perf_counter(), {n: (p, self._seconds(p)) for n, p in groups.items()}

    def since(self, mark: tuple[float, dict[str, tuple[list[Any], float]]]) -> dict[str, float]:
        began, groups = mark
        elapsed = time.perf_counter() - began
        return {
            name: (self._seconds(processes) - before) / elapsed * 100
            for name, (processes, before) in groups.items()
        }


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Thread:
    user: str
    token: str
    thread_id: str
    stream: str
    conn: SseConnection | None = None


class Bench:
    def __init__(self, stack: LocalStack, store: MessageStore, reader: Reader) -> None:
        self.stack = stack
        self.store = store
        self.reader = reader
        self.base_url = stack.urls["ingest"]
        self.http = httpx.Client(base_url=self.base_url, timeout=60)

    def new_thread(self, prefix: str, timeout: float = 60.0) -> Thread:
        user = f"{prefix}-{uuid.uuid4().hex[:10]}"
        token = self.stack.dev_token(user)
        assert token is not None
        made = self.http.post(
            "/v1/threads",
            json={},
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
        if made.status_code != 201:
            raise RuntimeError(f"POST /v1/threads: {made.status_code} {made.text[:300]}")
        thread_id = str(made.json()["thread_id"])
        _, stream = resolve_thread(self.store, thread_id, user)
        return Thread(user, token, thread_id, stream)

    def open(self, thread: Thread, before_live: Callable[[], None] | None = None) -> float:
        thread.conn, opened = open_stream(
            self.base_url, thread.thread_id, thread.token, self.reader, thread.user, before_live
        )
        return opened

    def release(self, thread: Thread) -> None:
        """End the thread's stream at once: reset the connection, then append an event so the
        server writes to it, fails, and frees its thread (idle, it would write only its
        heartbeat, every 15 s)."""
        if thread.conn is None:
            return
        self.reader.remove(thread.conn, abort=True)
        thread.conn = None
        self.append_reply(thread, f"bye-{uuid.uuid4().hex}", "bye")

    def reply_message(
        self, thread: Thread, step: str, text: str
    ) -> tuple[str, dict[str, Any], Any]:
        event = ev.LLMResponseReceived(step_id=step, response_text=text, model_name="bench")
        message = ev.to_message(event, ev.Metadata(user_id=thread.user))
        return message.type, message.data, message.metadata

    def append_reply(self, thread: Thread, step: str, text: str) -> float:
        """Append an LLMResponseReceived; returns the time just before the statement went."""
        kind, data, metadata = self.reply_message(thread, step, text)
        start = time.perf_counter()
        self.store.write_message(None, thread.stream, kind, data, metadata)
        return start

    def close(self) -> None:
        self.http.close()


def pause() -> None:
    """Samples spaced 10-40 ms apart: each finds the stream idle, at a random phase of its
    periodic read."""
    time.sleep(random.uniform(0.01, 0.04))


def baseline(url: str, store: MessageStore) -> Figures:
    """`pg_notify` on a pooled connection -> a LISTENing psycopg connection's `notifies()`."""
    channel = f"bench_{uuid.uuid4().hex}"
    listener = RawListener(url, [channel])
    samples: list[float] = []
    try:
        for i in range(BASELINE_SAMPLES + 20):
            payload = str(i)
            start = time.perf_counter()  # the pool checkout inside, as DeltaPublisher has it
            with store.connection() as conn:
                conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
            arrived = listener.first_after(channel, payload, start)
            if arrived is None:
                raise RuntimeError("a raw NOTIFY never arrived")
            if i >= 20:
                samples.append((arrived - start) * 1000)
            pause()
    finally:
        listener.close()
    return Figures(samples)


@dataclass
class Series:
    """Latencies from the writer's clock to the client, and to a raw listener."""

    stream: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    lost: int = 0
    unopened: int = 0  # samples skipped: the server did not open a stream in time


def event_latency(bench: Bench, url: str) -> tuple[Series, Series, Series]:
    """Appends -> SSE, alone; then each right behind a delta of the same step (a reply's end);
    then PROBES with the last delta and the event committed together, so that both
    notifications reach the stream's listener at once."""
    thread = bench.new_thread("bench-event")
    bench.open(thread)
    listener = RawListener(url, [THREAD_EVENTS_CHANNEL, channel_of(thread.stream)])
    time.sleep(0.5)  # the stream's delta subscription is LISTENed within one poll (0.2 s)
    alone, behind, together = Series(), Series(), Series()
    arrivals = bench.reader.arrivals
    try:
        for i in range(SAMPLES + 10):
            step = f"event-{uuid.uuid4().hex}"
            start = bench.append_reply(thread, step, f"sample {i}")
            got = bench.reader.wait(lambda step=step: step in arrivals.event, WAIT_SECONDS)
            raw = listener.first_after(THREAD_EVENTS_CHANNEL, thread.stream, start)
            if i >= 10:
                _note(alone, got, arrivals.event.get(step), raw, start)
            pause()
        live = arrivals.live
        for i in range(SAMPLES + 10):
            # as a reply ends: its first words streamed, then the last ones flushed and its
            # event appended at once (the step flushes its deltas, then writes the response)
            step = f"reply-{uuid.uuid4().hex}"
            kind, data, metadata = bench.reply_message(thread, step, f"word {i} and the rest")
            publisher = DeltaPublisher(bench.store, thread.stream, step, 1)
            publisher(f"word {i}")
            bench.reader.wait(lambda step=step: step in live, WAIT_SECONDS)
            pause()
            publisher(" and the rest")
            publisher.flush()
            start = time.perf_counter()
            bench.store.write_message(None, thread.stream, kind, data, metadata)
            got = bench.reader.wait(lambda step=step: step in arrivals.event, WAIT_SECONDS)
            raw = listener.first_after(THREAD_EVENTS_CHANNEL, thread.stream, start)
            if i >= 10:
                _note(behind, got, arrivals.event.get(step), raw, start)
            pause()
        channel = channel_of(thread.stream)
        for i in range(PROBES):
            step = f"together-{uuid.uuid4().hex}"
            kind, data, metadata = bench.reply_message(thread, step, f"word {i} and the rest")
            DeltaPublisher(bench.store, thread.stream, step, 1)(f"word {i}")
            bench.reader.wait(lambda step=step: step in live, WAIT_SECONDS)
            pause()
            # what DeltaPublisher would send next: the reply's text so far
            last = encode(TextDelta(step, 1, 1, f"word {i} and the rest", True))
            start = time.perf_counter()
            with bench.store.transaction() as tx:
                with tx.connection() as conn:
                    conn.execute("SELECT pg_notify(%s, %s)", (channel, last))
                tx.write_message(None, thread.stream, kind, data, metadata)
            got = bench.reader.wait(lambda step=step: step in arrivals.event, WAIT_SECONDS)
            _note(together, got, arrivals.event.get(step), None, start)
    finally:
        listener.close()
        bench.release(thread)
    return alone, behind, together


def _delta_of(step: str, seq: int) -> Callable[[str], bool]:
    """A test for the notification carrying delta `seq` of `step`, whatever else it carries."""

    def test(payload: str) -> bool:
        delta = decode(payload)
        return delta is not None and delta.step == step and delta.seq == seq

    return test


def _note(
    series: Series, got: bool, arrived: float | None, raw: float | None, start: float
) -> None:
    if not got or arrived is None:
        series.lost += 1
        return
    if arrived < start:
        raise RuntimeError("a sample arrived before it was sent: the client misread the stream")
    series.stream.append((arrived - start) * 1000)
    if raw is not None:
        series.raw.append((raw - start) * 1000)


def delta_latency(bench: Bench, url: str) -> tuple[Series, Series]:
    """Deltas published by DeltaPublisher -> their TEXT_MESSAGE_CONTENT at the client, a raw
    listener on the thread's channel receiving the same notifications: a reply's first words
    (the stream reads the log before them) and a later word of the same reply."""
    thread = bench.new_thread("bench-delta")
    bench.open(thread)
    channel = channel_of(thread.stream)
    listener = RawListener(url, [channel])
    time.sleep(0.5)
    first, later = Series(), Series()
    live = bench.reader.arrivals.live
    try:
        for i in range(SAMPLES + 10):
            step = f"delta-{uuid.uuid4().hex}"
            publisher = DeltaPublisher(bench.store, thread.stream, step, 1)
            for seq, series in enumerate((first, later)):
                text = f"word {i}.{seq} "
                start = time.perf_counter()
                publisher(text)
                publisher.flush()  # the second is held otherwise (batched per flush period)
                got = bench.reader.wait(
                    lambda step=step, seq=seq: len(live.get(step, ())) > seq, WAIT_SECONDS
                )
                raw = listener.first_after(channel, _delta_of(step, seq), start)
                if i >= 10:
                    arrived = live[step][seq][0] if got else None
                    _note(series, got, arrived, raw, start)
                pause()
    finally:
        listener.close()
        bench.release(thread)
    return first, later


def open_race(bench: Bench) -> tuple[Series, list[float]]:
    """An event appended a few ms after the stream's GET went out (its own thread each):
    before the stream reads the thread it comes in the replay, after the stream watches it
    live; this is the delivery time either way."""
    series = Series()
    opens: list[float] = []
    arrivals = bench.reader.arrivals
    for done in range(OPEN_SAMPLES):
        try:
            thread = bench.new_thread("bench-open", timeout=OPEN_TIMEOUT)
        except httpx.HTTPError:
            series.unopened = OPEN_SAMPLES - done
            break
        step = f"open-{uuid.uuid4().hex}"
        kind, data, metadata = bench.reply_message(thread, step, "appended while opening")
        started: list[float] = []
        delay = random.uniform(0.0, 0.02)

        def append(
            thread: Thread = thread,
            kind: str = kind,
            data: dict[str, Any] = data,
            metadata: Any = metadata,
            delay: float = delay,
            started: list[float] = started,
        ) -> None:
            time.sleep(delay)
            started.append(time.perf_counter())
            bench.store.write_message(None, thread.stream, kind, data, metadata)

        writer = threading.Thread(target=append)
        try:
            opens.append(bench.open(thread, before_live=writer.start))
        except (OpenFailed, OSError):
            series.unopened = OPEN_SAMPLES - done
            break
        finally:
            if writer.ident is not None:
                writer.join()
        got = bench.reader.wait(lambda step=step: step in arrivals.event, OPEN_WAIT_SECONDS)
        _note(series, got, arrivals.event.get(step), None, started[0])
        bench.release(thread)
    return series, opens


@dataclass
class EarlyDeltas:
    sent_after_ms: list[float] = field(default_factory=list)  # after `: live` reached the client
    lost_after_ms: list[float] = field(default_factory=list)  # of those, not streamed
    still_missing: int = 0  # steps whose text was not streamed after the next delta either
    unopened: int = 0


def early_deltas(bench: Bench) -> EarlyDeltas:
    """A step's first delta published 0-300 ms after a new stream said `: live` (as a model's
    first words may come right after the client opened the stream and posted): is it
    streamed? And once the next delta came, 0.3 s later, is the text so far?"""
    early = EarlyDeltas()
    live = bench.reader.arrivals.live
    for done in range(OPEN_SAMPLES):
        step = f"early-{uuid.uuid4().hex}"
        try:
            thread = bench.new_thread("bench-early", timeout=OPEN_TIMEOUT)
            bench.open(thread)
        except (OpenFailed, OSError, httpx.HTTPError):
            early.unopened = OPEN_SAMPLES - done
            break
        live_at = time.perf_counter()
        time.sleep(random.uniform(0.0, 0.3))
        sent = time.perf_counter()
        publisher = DeltaPublisher(bench.store, thread.stream, step, 1)
        publisher("first ")
        after = (sent - live_at) * 1000
        early.sent_after_ms.append(after)
        if not bench.reader.wait(lambda step=step: step in live, 0.3):
            early.lost_after_ms.append(after)
        publisher("second")
        publisher.flush()
        text = bench.reader.arrivals.text
        if not bench.reader.wait(
            lambda step=step, text=text: text.get(step) == "first second", 0.5
        ):
            early.still_missing += 1
        bench.release(thread)
    return early


@dataclass
class Turns:
    deltas: list[float] = field(default_factory=list)  # SSE - raw listener, per word
    deltas_missing: int = 0  # words the raw listener got and the client never saw live
    reply: list[float] = field(default_factory=list)  # reply event: SSE - raw listener
    text_mismatch: int = 0
    words: int = 0


def real_turns(bench: Bench, url: str) -> Turns:
    """Turns through the stack; the step's own DeltaPublisher and append, observed twice."""
    thread = bench.new_thread("bench-turn")
    bench.open(thread)
    channel = channel_of(thread.stream)
    listener = RawListener(url, [THREAD_EVENTS_CHANNEL, channel])
    time.sleep(0.5)
    turns = Turns()
    auth = {"Authorization": f"Bearer {thread.token}"}
    arrivals = bench.reader.arrivals
    assert thread.conn is not None
    conn = thread.conn
    try:
        for _ in range(REAL_TURNS):
            finished = len(conn.finished)
            listener.clear()
            sent = bench.http.post(
                f"/v1/threads/{thread.thread_id}/messages",
                json={"message": "what is 2+2"},
                headers=auth,
            )
            if sent.status_code != 202:
                raise RuntimeError(f"POST message: {sent.status_code} {sent.text[:300]}")
            if not bench.reader.wait(lambda n=finished: len(conn.finished) > n, 30):
                raise RuntimeError("a turn's run never finished on the stream")
            done = conn.finished[finished]
            time.sleep(0.1)
            with listener.cond:
                got = list(listener.got)
            announced = [at for at, name, _ in got if name == THREAD_EVENTS_CHANNEL]
            if announced:
                turns.reply.append((done - announced[-1]) * 1000)
            by_step: dict[str, list[tuple[int, float]]] = {}
            for at, name, payload in got:
                delta = decode(payload) if name == channel else None
                if delta is not None:
                    by_step.setdefault(delta.step, []).append((delta.seq, at))
            for step, sent_deltas in by_step.items():
                seen = arrivals.live.get(step, [])
                for seq, at in sent_deltas:
                    turns.words += 1
                    if seq < len(seen):
                        turns.deltas.append((seen[seq][0] - at) * 1000)
                    else:
                        turns.deltas_missing += 1
            page = bench.http.get(f"/v1/threads/{thread.thread_id}/events", headers=auth)
            for event in page.json()["events"]:
                if event["type"] == "LLMResponseReceived" and event["data"]["response_text"]:
                    step = event["data"]["step_id"]
                    if arrivals.text.get(step, "") != event["data"]["response_text"]:
                        turns.text_mismatch += 1
    finally:
        listener.close()
        bench.release(thread)
    return turns


@dataclass
class Leave:
    limit: int
    idle_s: float | None = None  # closed, thread idle: until a new stream opens (None: not yet)
    written_ms: float | None = None  # reset, then an event in the thread: the same
    error: str | None = None


def clients_leave(bench: Bench, done: threading.Event, result: list[Leave]) -> None:
    """One user opens STREAMS_PER_USER streams and closes them all (tabs closed, reloaded):
    how long until the server lets them open another. First with the connections reset and
    an event appended to the thread (so the server writes to them), then with plain closes
    on an idle thread, polled once a second in the background."""
    leave = Leave(Settings().api.streams_per_user)
    result.append(leave)
    try:
        thread = bench.new_thread("bench-leave")
        leave.written_ms = _reopen_after(bench, thread, leave.limit, abort=True, done=done)
        if leave.written_ms is not None:
            leave.written_ms *= 1000
            time.sleep(0.5)  # the server frees the probe's stream too (released with an event)
            leave.idle_s = _reopen_after(bench, thread, leave.limit, abort=False, done=done)
    except Exception as exc:  # reported, not raised: the rest of the run goes on
        leave.error = f"{type(exc).__name__}: {exc}"


def _reopen_after(
    bench: Bench, thread: Thread, limit: int, *, abort: bool, done: threading.Event
) -> float | None:
    held = []
    for _ in range(limit):
        bench.open(thread)
        held.append(thread.conn)
    left = time.perf_counter()
    for conn in held:
        if conn is not None:
            bench.reader.remove(conn, abort=abort)
    thread.conn = None
    if abort:
        bench.append_reply(thread, f"bye-{uuid.uuid4().hex}", "bye")
    while not done.is_set() and time.perf_counter() - left < LEAVE_TIMEOUT:
        try:
            bench.open(thread)
        except OpenFailed as exc:
            if exc.status != 429:
                raise
            done.wait(0.01 if abort else 1.0)
            continue
        freed = time.perf_counter() - left
        bench.release(thread)
        return freed
    return None


@dataclass
class Step:
    streams: int
    opened: int
    refused: int
    open_ms: list[float]
    appended: int
    latencies: list[float]
    lost: int
    ended: int  # streams the server ended during the step
    writer_lag_ms: float
    rate: float  # events a second asked for
    achieved: float  # events a second appended
    idle_cpu: dict[str, float]  # % of a core with the streams open and nothing appended
    load_cpu: dict[str, float]  # % of a core while appending

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p99(self) -> float:
        return Figures(self.latencies).p99 if self.latencies else float("nan")

    @property
    def rate_reached(self) -> bool:
        return self.achieved >= 0.9 * self.rate

    @property
    def holds(self) -> bool:
        return (
            self.rate_reached
            and self.refused == 0
            and self.lost == 0
            and self.ended == 0
            and bool(self.latencies)
            and self.p99 <= CONCURRENT_P99_TARGET_MS
        )


def append_steadily(
    bench: Bench, live: list[Thread], rate: float, total: int
) -> tuple[dict[str, float], float, float]:
    """`total` events, `rate` a second, round the threads in turn, from WRITERS threads (so
    one slow commit delays few), for at most 1.25 x the planned time: {step id: when its append
    started}, the writers' worst lag behind the schedule in seconds, and the rate reached."""
    sent: dict[str, float] = {}
    lags = [0.0] * WRITERS
    begin = time.perf_counter() + 0.05
    stop = begin + 1.25 * total / rate

    def write(k: int) -> None:
        for i in range(k, total, WRITERS):
            if time.perf_counter() >= stop:
                return  # the writers cannot keep the rate: the step says so
            due = begin + i / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            else:
                lags[k] = max(lags[k], now - due)
            step = f"load-{uuid.uuid4().hex}"
            sent[step] = bench.append_reply(live[i % len(live)], step, "x")

    with ThreadPoolExecutor(WRITERS) as writers:
        list(writers.map(write, range(WRITERS)))
    elapsed = max(time.perf_counter() - begin, total / rate)
    return sent, max(lags), len(sent) / elapsed


def concurrency(bench: Bench, cpu: CpuMeter) -> list[Step]:
    """Doubling steps of open streams, each of its own user and thread, all kept open; in each
    step every thread gets STREAM_RATE events a second, spread evenly over the step."""
    counts = []
    n = 25
    while n <= MAX_STREAMS:
        counts.append(n)
        n *= 2
    threads: list[Thread] = []
    steps: list[Step] = []
    arrivals = bench.reader.arrivals
    for count in counts:
        ended_before = len(bench.reader.closed)
        new = count - len(threads)
        refused = 0
        open_ms: list[float] = []

        broken = threading.Event()

        def make(_: int, broken: threading.Event = broken) -> float | None:
            if broken.is_set():  # the server stopped answering: the rest is refused too
                return None
            try:
                thread = bench.new_thread("bench-many", timeout=OPEN_TIMEOUT)
                opened = bench.open(thread)
            except (OpenFailed, OSError, httpx.HTTPError):  # refused, or no answer in time
                broken.set()
                return None
            threads.append(thread)
            return opened

        with ThreadPoolExecutor(4) as pool:
            for outcome in pool.map(make, range(new)):
                if outcome is None:
                    refused += 1
                else:
                    open_ms.append(outcome)
        time.sleep(0.5)  # every new stream's delta LISTEN is in place, first reads done
        idle = cpu.start()
        time.sleep(2.0)
        idle_cpu = cpu.since(idle)
        live = [t for t in threads if t.conn is not None and t.conn.closed_at is None]
        rate = len(live) * STREAM_RATE
        for attempt in (1, 2):  # once more when the writers fell behind (a stall elsewhere)
            load = cpu.start()
            sent, lag, achieved = append_steadily(
                bench, live, rate, max(1, int(rate * STEP_SECONDS))
            )
            load_cpu = cpu.since(load)
            bench.reader.wait(
                lambda sent=sent: all(s in arrivals.event for s in sent), WAIT_SECONDS
            )
            latencies = [
                (arrivals.event[s] - t) * 1000 for s, t in sent.items() if s in arrivals.event
            ]
            step_result = Step(
                streams=count,
                opened=len(live),
                refused=refused,
                open_ms=open_ms,
                appended=len(sent),
                latencies=latencies,
                lost=len(sent) - len(latencies),
                ended=len(bench.reader.closed) - ended_before,
                writer_lag_ms=lag * 1000,
                rate=rate,
                achieved=achieved,
                idle_cpu=idle_cpu,
                load_cpu=load_cpu,
            )
            print(
                f"  {count:>4} streams: opened {len(live)}, refused {refused}, "
                f"p50 {step_result.p50:7.1f} ms, p99 {step_result.p99:7.1f} ms, "
                f"lost {step_result.lost}, {achieved:.0f} of {rate:.0f} events/s"
                + ("" if step_result.rate_reached or attempt == 2 else ": rate missed, again"),
                flush=True,
            )
            if step_result.rate_reached:
                break
        steps.append(step_result)
        if not step_result.holds:
            break
    for thread in threads:
        bench.release(thread)
    return steps


# -- report -----------------------------------------------------------------------------------


def _row(label: str, samples: list[float]) -> str:
    if not samples:
        return f"  {label:<52} (no samples)"
    figures = Figures(samples)
    return (
        f"  {label:<52} p50 {figures.p50:7.2f} ms   p99 {figures.p99:7.2f} ms   "
        f"max {max(samples):7.1f} ms   n={len(samples)}"
    )


def _verdict(value: float, target: float) -> str:
    return f"target p50 <= {target:g} ms: {'met' if value <= target else 'MISSED'}"


def _ratio(label: str, samples: list[float], base: Figures, target: float) -> str:
    if not samples:
        return f"  {label:<52} (no samples: target p50 <= {target:g} ms MISSED)"
    ours = Figures(samples)
    return (
        f"  {label:<52} {ours.p50 / base.p50:6.1f}x baseline p50   ({_verdict(ours.p50, target)})"
    )


def _slow(samples: list[float], lost: int) -> str:
    slow = sum(1 for s in samples if s >= 500)
    return f"  {'':<52} {slow} of {len(samples) + lost} took >= 500 ms, {lost} never arrived"


def _figures(samples: list[float]) -> dict[str, float | int | None]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "n": 0}
    figures = Figures(samples)
    return {"p50_ms": figures.p50, "p99_ms": figures.p99, "max_ms": max(samples), "n": len(samples)}


def _target(series: Series, base: Figures, target: float) -> dict[str, Any]:
    p50 = Figures(series.stream).p50 if series.stream else float("nan")
    return {
        **_figures(series.stream),
        "lost": series.lost,
        "raw_listener": _figures(series.raw),
        "ratio_p50": p50 / base.p50,
        "target_p50_ms": target,
        "met": p50 <= target,
    }


@dataclass
class Results:
    base: Figures
    alone: Series
    behind: Series
    together: Series
    first_words: Series
    later_words: Series
    turns: Turns
    steps: list[Step]
    opening: Series
    open_ms: list[float]
    early: EarlyDeltas
    leave: Leave | None


def main() -> None:
    argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog=KNOBS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args()
    local_database = not Settings().database.database_url
    url = bench_database("bench_stream")
    print(
        f"live stream benchmark: {SAMPLES} samples per series, streams up to {MAX_STREAMS} at "
        f"{STREAM_RATE:g} event/s each, server THREADS={SERVER_THREADS}; code at {COMMIT}",
        flush=True,
    )
    options = StackOptions.on_free_ports(
        transport=TRANSPORTS[STACK_TRANSPORT],
        relay_interval=0,  # nothing here needs the relay; it would only add load
        database_url=url,
        env=FUNCTION_ENV,
    )
    started = time.perf_counter()
    with contextlib.ExitStack() as cleanup:
        stack = cleanup.enter_context(
            LocalStack(Settings(database_url=url), options, out=io.StringIO())
        )
        print(
            f"stack up in {time.perf_counter() - started:.1f} s (transport: {stack.transport}); "
            f"ingest at {stack.urls['ingest']}",
            flush=True,
        )
        store = cleanup.enter_context(MessageStore(url, min_size=1, max_size=WRITERS + 2))
        reader = Reader()
        cleanup.callback(reader.close)
        bench = Bench(stack, store, reader)
        cleanup.callback(bench.close)
        leave_done = threading.Event()
        cleanup.callback(leave_done.set)
        leave: list[Leave] = []
        leaving = threading.Thread(
            target=clients_leave, args=(bench, leave_done, leave), name="leave", daemon=True
        )
        if LEAVE_TIMEOUT > 0:  # in the background: it mostly waits
            leaving.start()
        print("measuring: baseline", flush=True)
        base = baseline(url, store)
        print("measuring: event latency", flush=True)
        alone, behind, together = event_latency(bench, url)
        print("measuring: delta latency", flush=True)
        first_words, later_words = delta_latency(bench, url)
        print(f"measuring: {REAL_TURNS} turns through the stack", flush=True)
        turns = real_turns(bench, url)
        print("measuring: events and deltas sent while streams open", flush=True)
        opening, open_ms = open_race(bench)
        early = early_deltas(bench)
        print("measuring: concurrent streams", flush=True)
        if leaving.is_alive():
            print("waiting for the server to notice the clients that left", flush=True)
            leaving.join(LEAVE_TIMEOUT + 5)
        steps = concurrency(bench, CpuMeter(stack, store, local_database))
        results = Results(
            base,
            alone,
            behind,
            together,
            first_words,
            later_words,
            turns,
            steps,
            opening,
            open_ms,
            early,
            leave[0] if leave else None,
        )
        figures = report(results)
    if out := os.environ.get("BENCH_OUT"):
        Path(out).write_text(json.dumps(figures, indent=2))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


def _cpu(usage: dict[str, float]) -> str:
    return " ".join(f"{name} {value:3.0f}%" for name, value in usage.items()) or "-"


def report(r: Results) -> dict[str, Any]:
    base = r.base
    print("\nbaseline (PostgreSQL alone, same host, same clock)")
    print(_row("pg_notify (pooled conn) -> LISTENing psycopg conn", base.samples_ms))

    print("\n1. event latency: LLMResponseReceived appended -> its SSE message at the client")
    print(_row("append -> raw LISTEN on the trigger's channel", r.alone.raw))
    print(_row("append -> SSE message read by the client", r.alone.stream))
    print(_ratio("  ratio to the baseline", r.alone.stream, base, EVENT_TARGET_MS))
    print(_slow(r.alone.stream, r.alone.lost))
    print(_row("a reply's end: a delta, then its event at once", r.behind.stream))
    print(_slow(r.behind.stream, r.behind.lost))
    print(_row("probe: the last delta and its event in one commit", r.together.stream))
    print(_slow(r.together.stream, r.together.lost))

    print("\n2. delta latency: DeltaPublisher's pg_notify -> TEXT_MESSAGE_CONTENT at the client")
    for name, series in (("a reply's first words", r.first_words), ("a later word", r.later_words)):
        print(f"  {name}")
        print(_row("  pg_notify -> raw LISTEN (the same notification)", series.raw))
        print(_row("  pg_notify -> TEXT_MESSAGE_CONTENT at the client", series.stream))
        print(_ratio("    ratio to the baseline", series.stream, base, DELTA_TARGET_MS))
        print(_slow(series.stream, series.lost))

    t = r.turns
    print(
        f"\n   real turns through the stack ({REAL_TURNS}, offline model, {WORD_DELAY_MS} ms/word)"
    )
    print(_row("each word: client - raw listener, same NOTIFY", t.deltas))
    print(f"  {'':<52} {t.words} words sent, {t.deltas_missing} not streamed live")
    print(_row("reply event: client RUN_FINISHED - raw listener", t.reply))
    print(f"  {'':<52} streamed text != recorded text: {t.text_mismatch} replies")

    print(
        f"\n3. concurrent streams on one ingest process (gunicorn gthread, 1 worker, "
        f"THREADS={SERVER_THREADS}; {STREAM_RATE:g} event/s appended per stream)"
    )
    print(
        f"  {'streams':>7} {'unopened':>8} {'open p50':>9} {'events':>6} {'p50':>8} {'p99':>8} "
        f"{'max':>7} {'lost':>4} {'ended':>5} {'rate/s':>6} {'lag':>6}  p99<=100  "
        "CPU idle / appending (1 core = 100%)"
    )
    for s in r.steps:
        worst = max(s.latencies) if s.latencies else float("nan")
        opened = statistics.median(s.open_ms) if s.open_ms else float("nan")
        print(
            f"  {s.streams:>7} {s.refused:>8} {opened:>7.1f}ms {s.appended:>6} "
            f"{s.p50:>6.1f}ms {s.p99:>6.1f}ms {worst:>5.0f}ms {s.lost:>4} {s.ended:>5} "
            f"{s.achieved:>6.0f} {s.writer_lag_ms:>4.0f}ms  {'met' if s.holds else 'MISSED':<8}  {_cpu(s.idle_cpu)} / {_cpu(s.load_cpu)}"
        )
    print(
        "  (open p50: GET -> `: live`; ended: streams the server closed; rate/s: events "
        "appended a second, a step that reached < 90% of its rate does not count; lag: how far "
        "the writers fell behind their schedule)"
    )
    held = [s.streams for s in r.steps if s.holds]
    largest = max(held) if held else 0
    capped = bool(r.steps) and r.steps[-1].holds
    cap = f" (stopped by MAX_STREAMS={MAX_STREAMS}, not by a miss)" if capped else ""
    print(f"  largest N with p99 <= {CONCURRENT_P99_TARGET_MS:g} ms: {largest}{cap}")
    local = getattr(stack_module, "LOCAL_THREADS", None)
    print(
        f"  each open stream holds one of the server's threads: THREADS={SERVER_THREADS} here "
        f"(LocalStack's own: {local or 'unset'}; functions-framework's default: 4 x CPUs = "
        f"{(os.cpu_count() or 1) * 4} on this machine); past it a request waits for a thread"
    )
    idle = getattr(live_stream, "IDLE_READ_SECONDS", FALLBACK_SECONDS)
    print(
        f"  besides wake-ups a stream reads its thread every {idle:g} s ({FALLBACK_SECONDS:g} s "
        f"while a run is open), through the process's pool of DB_POOL_MAX_SIZE="
        f"{Settings().database.db_pool_max_size} connections"
    )

    print("\n   around opening and leaving a stream")
    print(_row("event appended 0-20 ms after the GET went out", r.opening.stream))
    print(_slow(r.opening.stream, r.opening.lost))
    if r.opening.unopened or r.early.unopened:
        print(
            f"  {'':<52} streams not opened in {OPEN_TIMEOUT:g} s: "
            f"{r.opening.unopened + r.early.unopened} (samples skipped)"
        )
    print(_row("opening a stream: GET -> `: live` at the client", r.open_ms))
    e = r.early
    lost = sorted(e.lost_after_ms)
    window = f", the latest {lost[-1]:.0f} ms after it" if lost else ""
    print(
        f"  first delta of a step sent 0-300 ms after `: live`: {len(lost)} of "
        f"{len(e.sent_after_ms)} not streamed{window}; the text so far still missing after "
        f"the next delta: {e.still_missing}"
    )
    if r.leave is not None:
        gone = r.leave
        if gone.error is not None:
            print(f"  clients that leave: not measured ({gone.error})")
        else:
            written = f"{gone.written_ms:.0f} ms" if gone.written_ms is not None else "never"
            idle = f"{gone.idle_s:.1f} s" if gone.idle_s is not None else f"> {LEAVE_TIMEOUT:g} s"
            print(
                f"  one user's {gone.limit} streams (STREAMS_PER_USER) closed by the client: "
                f"a new one opens {idle} later on an idle thread, {written} later when the "
                "connections were reset and an event followed"
            )

    return {
        "commit": COMMIT,
        "server_threads": SERVER_THREADS,
        "baseline_notify": _figures(base.samples_ms),
        "event": _target(r.alone, base, EVENT_TARGET_MS),
        "event_behind_delta": {**_figures(r.behind.stream), "lost": r.behind.lost},
        "event_with_delta_one_commit": {**_figures(r.together.stream), "lost": r.together.lost},
        "delta_first_words": _target(r.first_words, base, DELTA_TARGET_MS),
        "delta_later_word": _target(r.later_words, base, DELTA_TARGET_MS),
        "real_turns": {
            "turns": REAL_TURNS,
            "word_delay_ms": WORD_DELAY_MS,
            "word_over_raw": _figures(t.deltas),
            "words": t.words,
            "words_not_live": t.deltas_missing,
            "reply_over_raw": _figures(t.reply),
            "text_mismatch": t.text_mismatch,
        },
        "concurrency": {
            "events_per_stream_per_second": STREAM_RATE,
            "steps": [
                {
                    "streams": s.streams,
                    "refused": s.refused,
                    "open_p50_ms": statistics.median(s.open_ms) if s.open_ms else None,
                    "events": s.appended,
                    **_figures(s.latencies),
                    "lost": s.lost,
                    "ended": s.ended,
                    "writer_lag_ms": s.writer_lag_ms,
                    "rate_asked": s.rate,
                    "rate_reached": s.achieved,
                    "idle_cpu_percent": s.idle_cpu,
                    "load_cpu_percent": s.load_cpu,
                    "holds": s.holds,
                }
                for s in r.steps
            ],
            "largest_streams_p99_within_target": largest,
            "stopped_by_max_streams": capped,
            "p99_target_ms": CONCURRENT_P99_TARGET_MS,
        },
        "event_while_opening": {**_figures(r.opening.stream), "lost": r.opening.lost},
        "stream_open": _figures(r.open_ms),
        "early_deltas": {
            "sent": len(e.sent_after_ms),
            "not_streamed_after_ms": lost,
            "still_missing_after_next_delta": e.still_missing,
        },
        "leave": (
            {
                "streams": r.leave.limit,
                "idle_freed_after_s": r.leave.idle_s,
                "reset_and_event_freed_after_ms": r.leave.written_ms,
                "error": r.leave.error,
            }
            if r.leave is not None
            else None
        ),
    }


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM too unwinds, so the stack and the streams are closed


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted: stopped what it started", file=sys.stderr)
        sys.exit(130)
