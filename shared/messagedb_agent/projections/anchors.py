"""Reply anchoring: which context an LLM response answered, and which reply answers a message.

A step may be claimed several times (a failed attempt, an expired lease), each claim cut at its
own head. The response answered the context of the claim that produced it: the engine records
that claim as the response's causation. Without that link the earliest claim still alive (not
ended by its own failure) is assumed, because assuming too little only costs one more call,
while assuming too much would leave a user's message unanswered.

Every projection that places a response (the LLM context, the next step, the wait for a reply)
asks this one module, so they can never disagree about what was answered.
"""

from __future__ import annotations

from collections.abc import Iterable

from messagedb_agent.events.agent import (
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    ModelUnavailable,
)
from messagedb_agent.events.approval import ToolApprovalRequested
from messagedb_agent.events.base import Event, Recorded
from messagedb_agent.events.system import SessionCompleted


class Anchors:
    """Accumulates the claims of a thread's LLM steps while a projection folds its events."""

    def __init__(self) -> None:
        self._by_position: dict[int, tuple[str, int]] = {}
        self._alive: dict[str, dict[int, int]] = {}
        self._latest: dict[str, int] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Anchors) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def copy(self) -> Anchors:
        """An equal, independent accumulator (claims are immutable tuples, shared)."""
        twin = Anchors()
        twin._by_position = dict(self._by_position)
        twin._alive = {step: dict(attempts) for step, attempts in self._alive.items()}
        twin._latest = dict(self._latest)
        return twin

    def claimed(self, event: LLMCallRequested, position: int) -> None:
        self._by_position[position] = (event.step_id, event.context_position)
        self._alive.setdefault(event.step_id, {}).setdefault(event.attempt, event.context_position)
        self._latest[event.step_id] = event.context_position

    def failed(self, event: LLMCallFailed) -> None:
        self._alive.get(event.step_id, {}).pop(event.attempt, None)

    def knows(self, step_id: str) -> bool:
        """Whether a claim of this step was folded (a fold that starts mid-thread may not)."""
        return step_id in self._latest

    def answered_through(self, event: LLMResponseReceived, recorded: Recorded[Event]) -> int:
        """The last position of the context `event` was generated from."""
        cause = recorded.metadata.causation_message_position
        if cause is not None and recorded.metadata.causation_message_stream_name in (
            None,
            recorded.stream_name,
        ):
            claim = self._by_position.get(cause)
            if claim is not None and claim[0] == event.step_id:
                return claim[1]
        alive = self._alive.get(event.step_id)
        if alive:
            return min(alive.values())
        return self._latest.get(event.step_id, recorded.position)


REPLY_TYPES = frozenset({LLMResponseReceived.type, SessionCompleted.type})
"""The event types that can be a reply."""
WAKE_TYPES = REPLY_TYPES | {ToolApprovalRequested.type}
"""The appends worth waking a request that waits for a reply: a reply, or a call that now
waits for its owner's approval (no reply can come before that decision)."""


class ReplyWatch:
    """The reply to the user message at `position`, from the events that follow it.

    A reply is a final response (no tool calls) whose context reached the message, or the
    thread's closing message. Feed it what was appended after the message, in order, as it is
    read; claims written before the message need not be fed: their calls could not see it.
    `approval` is a call asked for after the message that waits for its owner: until it is
    decided, no reply comes.
    """

    __slots__ = ("_anchors", "approval", "position", "reply")

    def __init__(self, position: int) -> None:
        self.position = position
        self._anchors = Anchors()
        self.reply: Recorded[Event] | None = None
        self.approval: Recorded[Event] | None = None

    def feed(self, events: Iterable[Recorded[Event]]) -> Recorded[Event] | None:
        for recorded in events:
            if self.reply is not None:
                break
            event = recorded.event
            if isinstance(event, LLMCallRequested):
                self._anchors.claimed(event, recorded.position)
            elif isinstance(event, LLMCallFailed):
                self._anchors.failed(event)
            elif isinstance(event, LLMResponseReceived):
                if (
                    not event.tool_calls
                    and self._anchors.knows(event.step_id)
                    and self._anchors.answered_through(event, recorded) >= self.position
                ):
                    self.reply = recorded
            elif isinstance(event, SessionCompleted):
                self.reply = recorded
            elif isinstance(event, ToolApprovalRequested):
                self.approval = recorded
        return self.reply


def reply_text(recorded: Recorded[Event]) -> str:
    """What a reply says: a final response's text, the closing message, or the notice that
    the model is unavailable."""
    event = recorded.event
    if isinstance(event, LLMResponseReceived):
        return event.response_text
    if isinstance(event, ModelUnavailable):
        return event.notice or ""
    if isinstance(event, SessionCompleted):
        return event.message or ""
    return ""
