"""The model's live text as one connection forwards it, woven into the events from the log.

A text delta (`live/deltas.py`) belongs to one attempt of one model step, and is shown as the
AG-UI message of that attempt (`answer_message_id`: the step id for the first attempt). The
attempt's `LLMResponseReceived` later brings the whole text under the same id; a connection
that forwarded part of it live sends only the rest, so the client never sees a word twice.

An attempt that fails after some of its words went out never gets that event. AG-UI cannot
take text back, so the message is ended where the log says the attempt failed (its `retry` or
`attempt_failed` CUSTOM names it) or where a newer attempt starts writing, and always before
its run ends: a client's sequence check refuses a run that finishes with a message open. The
newer attempt writes under its own id. A client may drop the failed attempt's message; the log
never had it, so a reload does not show it either.

Resuming: the cursor `12~40` says the client had 40 characters of live text after position 12.
Those belong to the model call in flight at position 12, which the replay finds (its claim is
in the log before its first words are forwarded), so the resumed connection knows which
message the client holds open and how much of its text it has.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from messagedb_agent.live.cursor import Cursor, after_cursor
from messagedb_agent.live.deltas import TextDelta
from messagedb_agent.projections.agui import answer_message_id

if TYPE_CHECKING:
    from ag_ui.core import BaseEvent

    from messagedb_agent.projections.agui import Emitted

_FAILED = frozenset({"retry", "attempt_failed"})
_RUN_ENDS = frozenset({"RUN_FINISHED", "RUN_ERROR"})


@dataclass
class LiveText:
    """What one connection forwarded of the model's live text, by AG-UI message."""

    cursor: Cursor = field(default_factory=lambda: Cursor(-1))
    # messages started on the client and not ended -> characters of their text it has
    chars: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)  # ended: later deltas of them are late
    ended: bool = False  # the run this stream was opened for has ended
    last_id: str | None = None  # the id of the last message this connection sent
    _in_flight: str | None = None  # the model call the log last claimed, as its message
    _attempt: dict[str, int] = field(default_factory=dict)  # step -> attempt forwarded
    _next: dict[str, int] = field(default_factory=dict)  # message -> next delta seq
    _stopped: set[str] = field(default_factory=set)
    _resumed: bool = False

    def id_for(self, position: int) -> str:
        """The id of live text sent after `position`: how much text of open messages followed."""
        return f"{position}~{sum(self.chars.values())}"

    def is_new(self, delta: TextDelta) -> bool:
        """A delta of a message this connection has not started: the log may hold its claim."""
        message = answer_message_id(delta.step, delta.attempt)
        return message not in self.chars and message not in self.finished

    def take(self, delta: TextDelta, *, run_open: bool) -> list[BaseEvent]:
        """The AG-UI events a delta adds: only one attempt's text per step, in order. A gap,
        text whose start this connection never had, or text outside a run (a cancelled turn's
        call still writing) stops that message's live text; its event, if any, carries it."""
        from ag_ui.core import TextMessageContentEvent, TextMessageStartEvent

        message = answer_message_id(delta.step, delta.attempt)
        if message in self.finished or message in self._stopped:
            return []
        current = self._attempt.get(delta.step)
        if current is not None and delta.attempt < current:
            return []  # an older attempt's late words
        if not run_open:
            self._stopped.add(message)
            return []
        events: list[BaseEvent] = []
        if current is not None and delta.attempt > current:
            events.extend(self._close(answer_message_id(delta.step, current)))
        self._attempt[delta.step] = delta.attempt
        if delta.seq < self._next.get(message, 0):
            return events  # older than what was forwarded
        had = self.chars.get(message)
        if delta.full:
            rest = delta.text[had or 0 :]
        elif had is not None and self._next.get(message) == delta.seq:
            rest = delta.text
        else:  # a gap, or new text of a message whose start this connection never had
            self._stopped.add(message)
            return events
        self._next[message] = delta.seq + 1
        if had is None:
            events.append(TextMessageStartEvent(message_id=message, role="assistant"))
            self.chars[message] = 0
        if rest:
            self.chars[message] += len(rest)
            events.append(TextMessageContentEvent(message_id=message, delta=rest))
        return events

    def weave(self, emitted: list[Emitted]) -> Iterator[Emitted]:
        """The log's events for this connection: those after its cursor, less what the live
        text already gave the client, with the ends of messages whose attempt failed."""
        for item in emitted:
            if after_cursor(item, self.cursor):
                self.resume()
                for out in self._woven(item):
                    yield out
                    self.last_id = out.sse_id
            else:
                self._note(item)

    def resume(self) -> None:
        """Once the replay reaches the cursor: the message the client holds open, if any."""
        if self._resumed:
            return
        self._resumed = True
        message = self._in_flight
        if self.cursor.chars and message is not None and message not in self.finished:
            self.chars[message] = self.cursor.chars

    def _note(self, item: Emitted) -> None:
        """What the client had before its cursor: which model call was in flight, and which
        messages ended."""
        from ag_ui.core import CustomEvent, TextMessageEndEvent

        event = item.event
        if isinstance(event, TextMessageEndEvent):
            self.finished.add(event.message_id)
        elif isinstance(event, CustomEvent) and event.name == "claim":
            value = event.value
            if isinstance(value, dict) and value.get("kind") == "llm":
                self._in_flight = answer_message_id(value["step_id"], value["attempt"])

    def _woven(self, item: Emitted) -> Iterator[Emitted]:
        from ag_ui.core import (
            CustomEvent,
            TextMessageContentEvent,
            TextMessageEndEvent,
            TextMessageStartEvent,
        )

        event = item.event
        self._note(item)
        if isinstance(event, CustomEvent) and event.name in _FAILED:
            value = event.value if isinstance(event.value, dict) else {}
            yield from self._ends([str(value.get("message_id"))], item)
        elif event.type.value in _RUN_ENDS:
            yield from self._ends(list(self.chars), item)
        if isinstance(event, TextMessageEndEvent):
            self.chars.pop(event.message_id, None)
        had = (
            self.chars.get(event.message_id)
            if isinstance(event, TextMessageStartEvent | TextMessageContentEvent)
            else None
        )
        if had is None:
            yield item
        elif isinstance(event, TextMessageContentEvent) and (rest := event.delta[had:]):
            # Start and content are never the last of their group, so the id still arrives.
            self.chars[event.message_id] = had + len(rest)
            yield replace(item, event=event.model_copy(update={"delta": rest}))

    def _ends(self, messages: list[str], before: Emitted) -> Iterator[Emitted]:
        """Ends of open messages, sent under the id the client already has, so a client that
        resumes from it has them and one that resumes from before gets them again."""
        from messagedb_agent.projections.agui import Emitted

        for event in (end for message in messages for end in self._close(message)):
            yield Emitted(self._previous_id(), before.position, event)

    def _close(self, message: str) -> list[BaseEvent]:
        from ag_ui.core import TextMessageEndEvent

        if message not in self.chars:
            return []
        del self.chars[message]
        self.finished.add(message)
        return [TextMessageEndEvent(message_id=message)]

    def _previous_id(self) -> str:
        """The last id sent (or the cursor's, before any), with no live text after it: the
        message it had open is closed now."""
        last, cursor = self.last_id, self.cursor
        if last is None:
            index = cursor.index
            return f"{cursor.position}~0" if index is None else f"{cursor.position}.{index}"
        position, tilde, _ = last.partition("~")
        return f"{position}~0" if tilde else last
