"""A thread as one worker sees it while driving it: its events and their folds, kept current.

Reading and projecting a thread costs its whole history once per invocation; after that each
appended event is folded in as it is written, so a step costs the events it adds, not the
events before it. The folds are the projections' own (`NextStepFold`, `LLMContextFold`), which
equal the pure functions of the full list.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from messagedb_agent.events import Event, Recorded, SessionStarted
from messagedb_agent.projections.llm_context import LLMContext, LLMContextFold
from messagedb_agent.projections.next_step import NextStep, NextStepFold, Policy


class ThreadView:
    def __init__(self, events: Sequence[Recorded[Event]]) -> None:
        self.events: list[Recorded[Event]] = []
        self.started: SessionStarted | None = None
        self._next = NextStepFold()
        self._context = LLMContextFold()
        self.extend(events)

    def extend(self, events: Sequence[Recorded[Event]]) -> None:
        if self.started is None:
            self.started = next(
                (e.event for e in events if isinstance(e.event, SessionStarted)), None
            )
        self.events.extend(events)
        self._next.feed(events)
        self._context.feed(events)

    @property
    def context_messages(self) -> int:
        """How many messages an LLM call on this view is given."""
        return self._context.size

    @property
    def head(self) -> Recorded[Event]:
        return self.events[-1]

    @property
    def stream_name(self) -> str:
        return self.events[-1].stream_name

    @property
    def owner(self) -> str:
        """The acting user of every tool call: the thread's owner, never a model argument."""
        if self.started is None:
            raise ValueError("thread has no SessionStarted event, so it has no owner")
        return self.started.owner

    def decide(self, now: datetime, policy: Policy) -> NextStep:
        return self._next.decide(now, policy)

    def context(self) -> LLMContext:
        return self._context.context()
