"""Which context an LLM response answered, so every projection places it the same way.

A step may be claimed several times (a failed attempt, an expired lease), each claim cut at its
own head. The response answered the context of the claim that produced it: the engine records
that claim as the response's causation. Without that link the earliest claim still alive (not
ended by its own failure) is assumed, because assuming too little only costs one more call,
while assuming too much would leave a user's message unanswered.
"""

from __future__ import annotations

from messagedb_agent.events.agent import LLMCallFailed, LLMCallRequested, LLMResponseReceived
from messagedb_agent.events.base import Event, Recorded


class LLMClaims:
    """Accumulates the claims of a thread's LLM steps while a projection folds its events."""

    def __init__(self) -> None:
        self._by_position: dict[int, tuple[str, int]] = {}
        self._alive: dict[str, dict[int, int]] = {}
        self._latest: dict[str, int] = {}

    def claimed(self, event: LLMCallRequested, position: int) -> None:
        self._by_position[position] = (event.step_id, event.context_position)
        self._alive.setdefault(event.step_id, {}).setdefault(event.attempt, event.context_position)
        self._latest[event.step_id] = event.context_position

    def failed(self, event: LLMCallFailed) -> None:
        self._alive.get(event.step_id, {}).pop(event.retry_count, None)

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
