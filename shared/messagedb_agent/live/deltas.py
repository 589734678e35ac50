"""The model's text while it is generated: ephemeral deltas over PostgreSQL `NOTIFY`.

A delta is not an event. The final `LLMResponseReceived` stays the one source of truth: a
client that missed deltas (it connected late, a notification was dropped) still gets the whole
text from the event. So deltas go where they cost nothing durable: a `NOTIFY` on the thread's
own channel, delivered only to the sessions `LISTEN`ing on it (the ingest instances serving
that thread's streams), never written to the log, never delivered to anyone else.

Each notification carries a JSON object `{"step", "attempt", "seq", "text", "full"}`; `seq`
counts the attempt's notifications from 0, so a reader sees a gap (and waits for the event)
instead of garbling the text. While the text so far fits in one payload (PostgreSQL caps one at
8000 bytes), each notification carries all of it (`full`): a stream that starts listening in
the middle of a reply catches up at once. Past that, only the new text travels, split as needed,
and only streams that followed from the start go on showing it live.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from messagedb_agent.store import stream_name as names

if TYPE_CHECKING:
    from messagedb_agent.store.client import MessageStore

log = logging.getLogger(__name__)

MAX_TEXT_BYTES = 6000  # of one payload's text, well under PostgreSQL's 8000-byte cap
FLUSH_SECONDS = (
    0.1  # deltas arriving faster are sent together: one NOTIFY per flush (docs/capacity.md)
)


def channel_of(stream: str) -> str:
    """`agent_text_<thread uuid, hex>`: a plain identifier (a channel name is at most 63
    bytes), one per thread, whatever its category or shard."""
    return f"agent_text_{uuid.UUID(str(names.thread_id_of(stream))).hex}"


@dataclass(frozen=True, slots=True)
class TextDelta:
    step: str
    attempt: int
    seq: int
    text: str
    full: bool = False  # `text` is all of the attempt's text so far, not just the new part


def encode(delta: TextDelta) -> str:
    payload = {
        "step": delta.step,
        "attempt": delta.attempt,
        "seq": delta.seq,
        "text": delta.text,
        "full": delta.full,
    }
    return orjson.dumps(payload).decode()


def decode(payload: str) -> TextDelta | None:
    """None for anything that is not a delta (a stray notification on the channel)."""
    try:
        data = orjson.loads(payload)
        text, full = data["text"], data.get("full", False)
        if not isinstance(text, str) or not isinstance(full, bool):
            return None
        return TextDelta(str(data["step"]), int(data["attempt"]), int(data["seq"]), text, full)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _split(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode())
        if size + width > MAX_TEXT_BYTES:
            parts.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current:
        parts.append("".join(current))
    return parts


class DeltaPublisher:
    """Sends one model attempt's text deltas; best effort, never failing the model call.

    Deltas that arrive within `FLUSH_SECONDS` of the last send are held and sent together, so
    a model that streams many small chunks costs a few round trips, not one per chunk.
    """

    def __init__(
        self,
        store: MessageStore,
        stream: str,
        step: str,
        attempt: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._stream = stream
        self._step, self._attempt = step, attempt
        self._clock = clock
        self._seq = 0
        self._so_far = ""
        self._held: list[str] = []
        self._last = float("-inf")
        self._broken = False

    def __call__(self, text: str) -> None:
        if not text or self._broken:
            return
        self._held.append(text)
        if self._clock() - self._last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self._held or self._broken:
            return
        text, self._held = "".join(self._held), []
        self._so_far += text
        whole = len(self._so_far.encode()) <= MAX_TEXT_BYTES
        try:
            channel = channel_of(self._stream)
            with self._store.connection() as conn:
                for part in [self._so_far] if whole else _split(text):
                    delta = TextDelta(self._step, self._attempt, self._seq, part, whole)
                    conn.execute("SELECT pg_notify(%s, %s)", (channel, encode(delta)))
                    self._seq += 1
        except Exception as exc:  # the reply is still recorded whole; only liveness is lost
            self._broken = True
            log.warning("text deltas for %s stopped: %s", self._step, exc)
        self._last = self._clock()
