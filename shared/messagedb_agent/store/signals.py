"""Wake-ups for code waiting on a stream: PostgreSQL `LISTEN`, one connection per process.

The database announces appended events on a channel (`postgres.agent_schema`); a daemon thread
listens on one dedicated connection and sets the event of every waiter watching that stream.
A signal is a hint, never the data: the waiter reads the stream after each one. Notifications
sent while the listener is reconnecting are lost, so a waiter still reads now and then
(`FALLBACK_SECONDS`), and while the listener is down it polls as it did without one.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

log = logging.getLogger(__name__)

_CHANNEL = re.compile(r"[a-z_][a-z0-9_]{0,62}")

FALLBACK_SECONDS = 1.0
# How long a new subscription may wait for its LISTEN: the listener applies subscriptions
# between polls, so this is also the poll's length.
_POLL_NOTIFIES_SECONDS = 0.2
MAX_QUEUED_PAYLOADS = 1000  # per subscriber: a reader that stops reading drops, never grows
RECONNECT_SECONDS = 1.0  # the first retry; doubled after each failure in a row, up to the max
MAX_RECONNECT_SECONDS = 30.0


class Watch:
    """One waiter's view of one stream."""

    def __init__(self, signals: StreamSignals) -> None:
        self._signals = signals
        self._woken = threading.Event()
        self._announced = False

    @property
    def listening(self) -> bool:
        return self._signals.listening

    def wait(self, seconds: float) -> bool:
        """Wait until the stream is announced (or nudged) or `seconds` pass; True when it was."""
        woken = self._woken.wait(seconds)
        self._woken.clear()
        return woken

    def wake(self) -> None:
        """The stream was announced (or the listener lost its connection: read to be sure)."""
        self._announced = True
        self._woken.set()

    def nudge(self) -> None:
        """Something else for this waiter arrived (a subscription's payload): wake it only."""
        self._woken.set()

    def announced(self) -> bool:
        """Whether the stream was announced since the last call."""
        announced, self._announced = self._announced, False
        return announced


class Subscription:
    """The payloads sent on one channel while subscribed (ephemeral: what was sent before,
    or while the listener was reconnecting, is not here)."""

    def __init__(self, channel: str, wake: Callable[[], None] | None = None) -> None:
        self.channel = channel
        self._wake = wake
        self._payloads: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._size = 0

    def put(self, payload: str) -> None:
        if self._size < MAX_QUEUED_PAYLOADS:
            self._size += 1
            self._payloads.put(payload)
        if self._wake is not None:
            self._wake()

    def drain(self) -> list[str]:
        drained: list[str] = []
        while True:
            try:
                drained.append(self._payloads.get_nowait())
            except queue.Empty:
                self._size = 0
                return drained


class StreamSignals:
    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        channel: str,
        *,
        stop_when: Callable[[], bool] = lambda: False,
    ) -> None:
        """`stop_when` ends the listener for good (its store was closed), checked after each
        lost connection; otherwise it reconnects, backing off while the database is away."""
        self._connect = connect
        self._channel = channel
        self._stop_when = stop_when
        self._lock = threading.Lock()
        self._watches: dict[str, set[Watch]] = {}
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._listened: set[str] = set()  # channels LISTENed on the current connection
        self._listening = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    @property
    def stopped(self) -> bool:
        return self._closed.is_set()

    def start(self, ready_within: float = 2.0) -> StreamSignals:
        """Start listening (once); the first call waits up to `ready_within` for the LISTEN.
        Never fails: without a listener, waiters poll."""
        with self._lock:
            first = self._thread is None
            if first:
                self._thread = threading.Thread(
                    target=self._run, name="stream-signals", daemon=True
                )
                self._thread.start()
        if first:
            self._listening.wait(ready_within)
        return self

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(_POLL_NOTIFIES_SECONDS * 4)

    @contextmanager
    def watch(self, stream: str) -> Iterator[Watch]:
        """Watch `stream` for the duration of the block; register before the first read, so a
        signal between that read and the wait is not missed."""
        watch = Watch(self)
        with self._lock:
            self._watches.setdefault(stream, set()).add(watch)
        try:
            yield watch
        finally:
            with self._lock:
                waiting = self._watches.get(stream)
                if waiting is not None:
                    waiting.discard(watch)
                    if not waiting:
                        del self._watches[stream]

    @contextmanager
    def subscribe(
        self, channel: str, wake: Callable[[], None] | None = None
    ) -> Iterator[Subscription]:
        """Receive the payloads sent on `channel` (a plain identifier) while in the block,
        calling `wake` (e.g. a `Watch`'s) on each. The listener LISTENs on it within one poll."""
        if not _CHANNEL.fullmatch(channel):
            raise ValueError(f"not a channel name: {channel!r}")
        subscription = Subscription(channel, wake)
        with self._lock:
            self._subscriptions.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                subscribed = self._subscriptions.get(channel)
                if subscribed is not None:
                    subscribed.discard(subscription)
                    if not subscribed:
                        del self._subscriptions[channel]

    def _run(self) -> None:
        pause = RECONNECT_SECONDS
        while not self._closed.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {self._channel}")
                    self._listened = set()
                    self._listening.set()
                    pause = RECONNECT_SECONDS
                    log.debug("listening on %s", self._channel)
                    while not self._closed.is_set():
                        self._follow_subscriptions(conn)
                        for notify in conn.notifies(timeout=_POLL_NOTIFIES_SECONDS):
                            if notify.channel == self._channel:
                                self._wake(notify.payload)
                            else:
                                self._deliver(notify.channel, notify.payload)
            except Exception as exc:  # any failure: waiters poll meanwhile; reconnect later
                if self._stop_when():
                    self._closed.set()
                elif pause == RECONNECT_SECONDS:  # once per outage, not once per retry
                    log.warning("stream signals lost their connection (%s); reconnecting", exc)
            finally:
                self._listening.clear()
                self._wake_all()  # waiters re-read now rather than trust a gap
            self._closed.wait(pause)
            pause = min(pause * 2, MAX_RECONNECT_SECONDS)

    def _follow_subscriptions(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            wanted = set(self._subscriptions)
        for channel in wanted - self._listened:
            conn.execute(f"LISTEN {channel}")
        for channel in self._listened - wanted:
            conn.execute(f"UNLISTEN {channel}")
        self._listened = wanted

    def _deliver(self, channel: str, payload: str) -> None:
        with self._lock:
            subscribed = list(self._subscriptions.get(channel, ()))
        for subscription in subscribed:
            subscription.put(payload)

    def _wake(self, stream: str) -> None:
        with self._lock:
            waiting = list(self._watches.get(stream, ()))
        for watch in waiting:
            watch.wake()

    def _wake_all(self) -> None:
        with self._lock:
            waiting = [watch for watches in self._watches.values() for watch in watches]
        for watch in waiting:
            watch.wake()
