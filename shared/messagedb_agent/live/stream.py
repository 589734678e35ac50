"""A thread's events as Server-Sent Events: from a position on, then live, resumable exactly.

Each SSE `id:` is a cursor into the log. In the AG-UI format one of our events may become
several AG-UI events: the last of them carries the event's stream position (`12`), the ones
before it `12.0`, `12.1`... (`projections/agui.py`; `cursor.py` reads ids back). A client
that reconnects with `Last-Event-ID` (or `?after=`) gets exactly what follows its cursor: the
mapping is a pure projection, so the same events always give the same AG-UI events and ids. The
raw format sends our own events as JSON, one per position.

Live text (`live/deltas.py`) is not in the log: its ids say how much text followed which
position (`12~40`), and `live/text.py` weaves it into the log's events, so a client gets each
word once, whether it saw it live, resumed in the middle, or missed it. Heartbeat comments keep
proxies from closing an idle stream; the stream ends at its maximum duration (under the
platform's request timeout) and the client resumes from its last id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import orjson

from messagedb_agent.live.cursor import Cursor
from messagedb_agent.live.deltas import channel_of, decode
from messagedb_agent.live.text import LiveText
from messagedb_agent.projections.cost import PriceTable
from messagedb_agent.projections.progress import aware
from messagedb_agent.store.signals import FALLBACK_SECONDS
from messagedb_agent.threads.reading import read_thread

if TYPE_CHECKING:
    from ag_ui.core import BaseEvent

    from messagedb_agent.events import Event, Recorded
    from messagedb_agent.projections.agui import AguiFold
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
        yield from _replayed(store, plan, _fold(plan, prices), LiveText(plan.cursor))[0]
        return
    channel = channel_of(plan.stream)
    with signals.watch(plan.stream) as watch, signals.subscribe(channel, watch.nudge) as text:
        yield from _follow(store, watch, text, plan, prices, clock)


def _replayed(
    store: MessageStore, plan: StreamPlan, fold: AguiFold | None, live: LiveText
) -> tuple[list[bytes], int]:
    """What the thread holds after the cursor, and the last position read."""
    out: list[bytes] = []
    position = -1
    for recorded in read_thread(store, plan.stream):
        out.extend(_emit(recorded, fold, plan, live))
        position = recorded.position
    live.resume()
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
    live = LiveText(plan.cursor)
    replay, position = _replayed(store, plan, fold, live)
    yield from replay
    if live.ended:
        return
    # The state travels inside runs (before each one ends): AG-UI clients refuse anything
    # but a new run after a run has finished, so none is sent here.
    yield comment("live")
    last_sent = last_read = clock()
    while clock() < deadline:
        busy = fold is None or fold.run_open or bool(live.chars)
        pause = FALLBACK_SECONDS if busy else IDLE_READ_SECONDS
        watch.wait(min(pause, max(0.0, deadline - clock())))
        out: list[bytes] = []
        deltas = [d for p in text.drain() if (d := decode(p)) is not None]
        # The log first: a model's first words come after the message and the run that
        # asked for them (read now, they are committed), never before.
        starting = any(live.is_new(d) for d in deltas)
        if watch.announced() or starting or clock() - last_read >= pause:
            for recorded in read_thread(store, plan.stream, after=position):
                out.extend(_emit(recorded, fold, plan, live))
                position = recorded.position
            last_read = clock()
        if fold is not None:
            for delta in deltas:
                if events := live.take(delta, run_open=fold.run_open):
                    # one write, one id: how much live text follows the last position read
                    sse_id = live.id_for(position)
                    out.extend(frame(agui_json(event), sse_id) for event in events)
                    live.last_id = sse_id
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
    recorded: Recorded[Event], fold: AguiFold | None, plan: StreamPlan, live: LiveText
) -> Iterator[bytes]:
    if fold is None:
        if recorded.position > plan.cursor.position:
            yield frame(raw_json(recorded), str(recorded.position))
        return
    for emitted in live.weave(fold.feed(recorded)):
        yield frame(agui_json(emitted.event), emitted.sse_id)
        if plan.until_run_ends and emitted.event.type in _RUN_ENDS:
            live.ended = True
