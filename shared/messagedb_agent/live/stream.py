"""A thread's events as Server-Sent Events: from a position on, then live, resumable exactly.

Each SSE `id:` is a cursor into the log. In the AG-UI format one of our events may become
several AG-UI events: the last of them carries the event's stream position (`12`), the ones
before it `12.0`, `12.1`... (`projections/agui.py`; `cursor.py` reads ids back). A client
that reconnects with `Last-Event-ID` (or `?after=`) gets exactly what follows its cursor: the
mapping is a pure projection, so the same events always give the same AG-UI events and ids. The
raw format sends our own events as JSON, one per position.

Live text (`live/deltas.py`) is not in the log: its ids say how much text followed which
position (`12~40`), and the `LLMResponseReceived` that ends it brings the whole text under the
same message id. So a client that saw the live text gets only the rest from the event (also
after resuming from `12~40`); one that missed it gets it all. Heartbeat comments keep proxies from closing an idle stream; the stream ends at
its maximum duration (under the platform's request timeout) and the client resumes from its
last id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import orjson

from messagedb_agent.live.cursor import Cursor, after_cursor
from messagedb_agent.live.deltas import TextDelta, channel_of, decode
from messagedb_agent.projections.cost import PriceTable
from messagedb_agent.projections.progress import aware
from messagedb_agent.store.signals import FALLBACK_SECONDS
from messagedb_agent.threads.reading import read_thread

if TYPE_CHECKING:
    from ag_ui.core import BaseEvent

    from messagedb_agent.events import Event, Recorded
    from messagedb_agent.projections.agui import AguiFold, Emitted
    from messagedb_agent.store.client import MessageStore
    from messagedb_agent.store.signals import StreamSignals, Subscription, Watch

log = logging.getLogger(__name__)

Format = Literal["agui", "raw"]
# A comment this often keeps proxies from closing an idle stream, and finds a client that
# left (the second write after it went fails) within two of them.
HEARTBEAT_SECONDS = 5.0
IDLE_READ_SECONDS = 5.0  # how often a stream with no run under way reads the thread anyway
_RUN_ENDS = frozenset({"RUN_FINISHED", "RUN_ERROR"})


@dataclass(frozen=True, slots=True)
class StreamPlan:
    thread_id: str
    stream: str
    cursor: Cursor
    format: Format
    max_seconds: float
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    until_run_ends: bool = False  # an AG-UI run request: its stream ends with the run


def frame(data: bytes | str, sse_id: str | None = None) -> bytes:
    """One SSE message. `data` is a single line (JSON), so one `data:` field holds it."""
    text = data.decode() if isinstance(data, bytes) else data
    head = f"id: {sse_id}\n" if sse_id is not None else ""
    return f"{head}data: {text}\n\n".encode()


def comment(text: str) -> bytes:
    return f": {text}\n\n".encode()


def agui_json(event: BaseEvent) -> str:
    """As AG-UI's own encoder writes it: camelCase keys, unset fields left out."""
    return event.model_dump_json(by_alias=True, exclude_none=True)


def raw_json(recorded: Recorded[Event]) -> bytes:
    return orjson.dumps(
        {
            "id": recorded.id,
            "type": recorded.type,
            "position": recorded.position,
            "time": aware(recorded.time).isoformat(),
            "data": recorded.event.model_dump(mode="json"),
            "metadata": recorded.metadata.model_dump(mode="json", exclude_none=True),
        }
    )


class _Live:
    """The text deltas this connection forwarded, by message (the model step), so the final
    event sends only the rest. Only one attempt's text is forwarded, in order: after a gap, a
    newer attempt, or new text whose start this connection never had, the step's text waits for
    its event."""

    def __init__(self, carried: int = 0) -> None:
        self.sent: dict[str, str] = {}
        self.open: dict[str, int] = {}  # live text of messages whose event has not come yet
        self.finished: set[str] = set()  # messages whose event came: later deltas are late
        self.ended = False  # the run this stream was opened for has ended
        # live text an earlier connection received of the next assistant message: its first
        # `carried` characters are not sent again
        self.carried = carried
        self._attempt: dict[str, int] = {}
        self._next: dict[str, int] = {}
        self._stopped: set[str] = set()

    def take(self, delta: TextDelta) -> list[BaseEvent]:
        from ag_ui.core import TextMessageContentEvent, TextMessageStartEvent

        step = delta.step
        if step in self.finished or step in self._stopped:
            return []  # its event, with the whole text, was sent already; or it stopped
        if delta.attempt != self._attempt.setdefault(step, delta.attempt):
            self._stopped.add(step)
            return []
        if delta.seq < self._next.get(step, 0):
            return []  # older than what was forwarded
        known = self.sent.get(step)
        if delta.full and known is None and self.carried:
            # resumed: the client had the first `carried` characters, and the message's start
            known = delta.text[: self.carried]
            self.sent[step], self.open[step], self.carried = known, len(known), 0
        if delta.full and (known is None or delta.text.startswith(known)):
            rest = delta.text[len(known or "") :]
        elif not delta.full and known is not None and self._next.get(step) == delta.seq:
            rest = delta.text
        else:  # a gap, or new text of a message whose start this connection never had
            self._stopped.add(step)
            return []
        self._next[step] = delta.seq + 1
        events: list[BaseEvent] = []
        if known is None:
            events.append(TextMessageStartEvent(message_id=step, role="assistant"))
            self.sent[step] = ""
        if rest:
            self.sent[step] += rest
            self.open[step] = self.open.get(step, 0) + len(rest)
            events.append(TextMessageContentEvent(message_id=step, delta=rest))
        return events

    def cursor(self, position: int) -> str:
        """The id of a live delta: the last position sent, and how much live text of the
        message not recorded yet followed it."""
        return f"{position}~{self.carried + sum(self.open.values())}"


def thread_events(
    store: MessageStore,
    signals: StreamSignals | None,
    plan: StreamPlan,
    prices: PriceTable,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[bytes]:
    """The SSE body. Reads the thread from its start (the AG-UI state needs it), sends what
    follows the cursor, then follows the thread until the client goes or time is up.

    It watches the thread before that first read, so nothing appended meanwhile goes
    unannounced. The log is read again when the database announces the thread (replies,
    approval requests), before a model's first words, and otherwise every `FALLBACK_SECONDS`
    while a run is under way (claims and tool results are not announced) or every
    `IDLE_READ_SECONDS` between runs. Live text wakes it without a read."""
    if signals is None:
        yield from _replayed(store, plan, _fold(plan, prices), _Live(plan.cursor.chars))[0]
        return
    channel = channel_of(plan.stream)
    with signals.watch(plan.stream) as watch, signals.subscribe(channel, watch.nudge) as text:
        yield from _follow(store, watch, text, plan, prices, clock)


def _replayed(
    store: MessageStore, plan: StreamPlan, fold: AguiFold | None, live: _Live
) -> tuple[list[bytes], int]:
    """What the thread holds after the cursor, and the last position read."""
    out: list[bytes] = []
    position = -1
    for recorded in read_thread(store, plan.stream):
        out.extend(_emit(recorded, fold, plan, live))
        position = recorded.position
    return out, position


def _follow(
    store: MessageStore,
    watch: Watch,
    text: Subscription,
    plan: StreamPlan,
    prices: PriceTable,
    clock: Callable[[], float],
) -> Iterator[bytes]:
    deadline = clock() + plan.max_seconds
    fold = _fold(plan, prices)
    live = _Live(plan.cursor.chars)
    replay, position = _replayed(store, plan, fold, live)
    yield from replay
    if live.ended:
        return
    # The state travels inside runs (before each one ends): AG-UI clients refuse anything
    # but a new run after a run has finished, so none is sent here.
    yield comment("live")
    last_sent = last_read = clock()
    while clock() < deadline:
        busy = fold is None or fold.run_open or bool(live.open)
        pause = FALLBACK_SECONDS if busy else IDLE_READ_SECONDS
        watch.wait(min(pause, max(0.0, deadline - clock())))
        out: list[bytes] = []
        deltas = [d for p in text.drain() if (d := decode(p)) is not None]
        # The log first: a model's first words come after the message and the run that
        # asked for them (read now, they are committed), never before.
        starting = any(d.step not in live.sent for d in deltas)
        if watch.announced() or starting or clock() - last_read >= pause:
            for recorded in read_thread(store, plan.stream, after=position):
                out.extend(_emit(recorded, fold, plan, live))
                position = recorded.position
            last_read = clock()
        if fold is not None:
            for delta in deltas:
                for event in live.take(delta):
                    out.append(frame(agui_json(event), live.cursor(position)))
        if out:
            yield b"".join(out)
            last_sent = clock()
        elif clock() - last_sent >= plan.heartbeat_seconds:
            yield comment("keep-alive")
            last_sent = clock()
        if live.ended:
            return
    yield comment("max duration reached: reconnect with Last-Event-ID to resume")


def _fold(plan: StreamPlan, prices: PriceTable) -> AguiFold | None:
    if plan.format == "raw":
        return None
    from messagedb_agent.projections.agui import AguiFold

    return AguiFold(plan.thread_id, prices)


def _emit(
    recorded: Recorded[Event], fold: AguiFold | None, plan: StreamPlan, live: _Live
) -> Iterator[bytes]:
    if fold is None:
        if recorded.position > plan.cursor.position:
            yield frame(raw_json(recorded), str(recorded.position))
        return
    for emitted in _merged(fold.feed(recorded), live):
        if after_cursor(emitted, plan.cursor):
            yield frame(agui_json(emitted.event), emitted.sse_id)
            if plan.until_run_ends and emitted.event.type in _RUN_ENDS:
                live.ended = True


def _merged(emitted: list[Emitted], live: _Live) -> Iterator[Emitted]:
    """The final message of a step whose text this connection streamed: its start went out
    with the first delta, so only the text not streamed yet is sent now. (Start and content
    are never the last of their group, so the group's id still reaches the client.)"""
    from ag_ui.core import TextMessageContentEvent, TextMessageEndEvent, TextMessageStartEvent

    for item in emitted:
        event = item.event
        if isinstance(event, TextMessageEndEvent):
            live.open.pop(event.message_id, None)
            live.finished.add(event.message_id)
        if not isinstance(event, TextMessageStartEvent | TextMessageContentEvent):
            yield item
            continue
        if live.carried and isinstance(event, TextMessageStartEvent) and event.role == "assistant":
            live.sent.setdefault(event.message_id, "")  # it started on the earlier connection
        elif (
            live.carried
            and isinstance(event, TextMessageContentEvent)
            and live.sent.get(event.message_id) == ""
        ):
            live.sent[event.message_id] = event.delta[: live.carried]
            live.carried = 0
        streamed = live.sent.get(event.message_id)
        if streamed is None:
            yield item
        elif isinstance(event, TextMessageContentEvent):
            if not event.delta.startswith(streamed):
                yield item  # a different attempt's text: the whole of it, as recorded
            elif rest := event.delta[len(streamed) :]:
                yield replace(item, event=event.model_copy(update={"delta": rest}))
