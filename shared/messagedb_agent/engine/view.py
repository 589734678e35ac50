"""A thread as one worker sees it while driving it: its events and their folds, kept current.

Reading and projecting a thread costs its whole history once per invocation; after that each
appended event is folded in as it is written, so a step costs the events it adds, not the
events before it. The folds are the projections' own (`NextStepFold`, `LLMContextFold`), which
equal the pure functions of the full list.
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
)
from messagedb_agent.projections.next_step import NextStep, NextStepFold, Policy, StepKind


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

    def context(self) -> LLMContext:
        return self._context.context()
