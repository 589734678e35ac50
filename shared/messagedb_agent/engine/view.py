"""A thread as one worker sees it while driving it: its events and their folds, kept current.

Reading and projecting a thread costs its whole history once per invocation; after that each
appended event is folded in as it is written, so a step costs the events it adds, not the
events before it. The folds are the projections' own (`NextStepFold`, `LLMContextFold`), which
equal the pure functions of the full list.

A view may also start from a snapshot of those folds (`restored`, see `snapshot.py`): it then
holds the events from the snapshot's position on, not the whole thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from messagedb_agent.events import Event, Recorded, SessionStarted
from messagedb_agent.events.ids import compaction_step_id
from messagedb_agent.projections.llm_context import (
    DEFAULT_TOOL_RESULT_MAX_CHARS,
    CompactionPlan,
    LLMContext,
    LLMContextFold,
    _Acc,
)
from messagedb_agent.projections.next_step import NextStep, NextStepFold, Policy, StepKind
from messagedb_agent.projections.progress import Progress


class ThreadView:
    def __init__(
        self,
        events: Sequence[Recorded[Event]],
        *,
        tool_result_max_chars: int = DEFAULT_TOOL_RESULT_MAX_CHARS,
    ) -> None:
        self.events: list[Recorded[Event]] = []
        self.started: SessionStarted | None = None
        self._next = NextStepFold()
        self._context = LLMContextFold(tool_result_max_chars)
        self.snapshot_position = -1  # the position of the last snapshot known to hold it
        self._built: LLMContext | None = None  # the context as of the last event folded
        self.extend(events)

    @classmethod
    def restored(
        cls,
        started: SessionStarted | None,
        progress: Progress,
        context: _Acc,
        tail: Sequence[Recorded[Event]],
    ) -> ThreadView:
        """A view from folds already fed up to `tail[0]` (which they include), and the rest
        of `tail` fed now. `tail[0]` is kept as an event only to be the head it was."""
        if not tail or progress.head != tail[0].position:
            raise ValueError("a restored view needs the event its folds end with")
        view = cls([], tool_result_max_chars=context.tool_result_max_chars)
        view.started = started
        view._next._progress = progress
        view._context._acc = context
        view.events.append(tail[0])
        view.extend(tail[1:])
        return view

    def folds(self) -> tuple[SessionStarted | None, Progress, _Acc]:
        """What the view has folded, for a snapshot: treat as read-only."""
        return self.started, self._next._progress, self._context._acc

    def extend(self, events: Sequence[Recorded[Event]]) -> None:
        if self.started is None:
            self.started = next(
                (e.event for e in events if isinstance(e.event, SessionStarted)), None
            )
        self.events.extend(events)
        self._next.feed(events)
        self._context.feed(events)
        self._built = None

    @property
    def context_messages(self) -> int:
        """How many messages an LLM call on this view is given."""
        return self._context.size

    def event_at(self, position: int) -> Recorded[Event] | None:
        """The event at `position`, if the view holds it."""
        first = self.events[0].position
        if first <= position <= self.events[-1].position:
            found = self.events[position - first]
            if found.position == position:
                return found
        return next((e for e in self.events if e.position == position), None)

    @property
    def size(self) -> int:
        """How many events the view stands for (a restored one holds fewer than that)."""
        return self.events[-1].position + 1

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

    def decide(self, now: datetime, policy: Policy, context_budget: int | None = None) -> NextStep:
        """The next step; a turn's first call over the context budget is preceded by a
        compaction, a step of its own (claimed, retried and paused like any model call)."""
        decision = self._next.decide(now, policy)
        if (
            decision.kind is StepKind.LLM_CALL
            and decision.attempt == 1
            and context_budget is not None
            and self._next.may_compact
            and self._context.compaction(context_budget) is not None
        ):
            step_id = compaction_step_id(self.stream_name, decision.head)
            return replace(decision, kind=StepKind.COMPACTION, step_id=step_id)
        return decision

    def compaction(self, budget: int) -> CompactionPlan | None:
        return self._context.compaction(budget)

    @property
    def context_tokens(self) -> int:
        """The estimated size of the context an LLM call on this view is given."""
        return self._context.tokens

    @property
    def system_prompt(self) -> str | None:
        """The thread's own system prompt, without building its context."""
        return self._context._acc.system_prompt

    def context(self) -> LLMContext:
        """The model's context; built once per event folded, however often it is asked for
        (it is immutable)."""
        if self._built is None:
            self._built = self._context.context()
        return self._built
