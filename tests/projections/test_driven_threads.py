"""Threads driven by the projections themselves, with workers that fail, stall and answer late.

Each test run plays a thread the way the engine would: it asks `project_next_step` what to
do, claims and executes that step (or crashes, or stalls and finishes long after its lease),
while users write mid-step and newer code writes unknown events. After every write the
protocol's promises are checked against what really happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.projections.thread_events import ThreadEvents, call

from messagedb_agent.events import Event, Recorded, ToolCall, UserMessageAdded
from messagedb_agent.events.ids import tool_step_id
from messagedb_agent.events.system import CompletionReason
from messagedb_agent.llm.types import AssistantTurn, Message, ToolResult, UserTurn
from messagedb_agent.projections.llm_context import project_llm_context
from messagedb_agent.projections.next_step import (
    NextStep,
    Policy,
    StepKind,
    project_next_step,
    project_pending_tool_calls,
)

POLICY = Policy(max_iterations=4, max_llm_attempts=3, max_tool_attempts=2)
LEASE = timedelta(seconds=120)
MOVES = 40
QUIET_MOVES = 60  # enough for any turn to finish: attempts and iterations are bounded
# Mostly things go well, so threads live long enough to meet the rarer troubles.
LLM_OUTCOMES = ("answer",) * 6 + ("fail", "crash", "stall")
TOOL_OUTCOMES = ("run",) * 6 + ("crash", "stall")
TOOL_RESULTS = ("ok",) * 3 + ("retryable", "error")

COMPLETION: dict[str, CompletionReason] = {
    "max_iterations": "max_iterations",
    "timeout": "timeout",
    "failure": "failure",
}


@dataclass
class Stalled:
    """A worker that lost its lease but may still write its outcome."""

    step_id: str
    attempt: int
    claim_position: int
    calls: tuple[ToolCall, ...] = ()  # empty for an LLM step


@dataclass
class Simulation:
    data: st.DataObject
    thread: ThreadEvents = field(default_factory=ThreadEvents)
    stalled: list[Stalled] = field(default_factory=list)
    # ground truth: the context position the worker that wrote each response had read
    answered: dict[str, int] = field(default_factory=dict)
    calls_made: int = 0

    def draw(self, strategy: st.SearchStrategy[object], label: str) -> object:
        return self.data.draw(strategy, label=label)

    def chance(self, label: str, percent: int) -> bool:
        """True `percent` times in a hundred; shrinks towards False, the uneventful run."""
        roll = self.draw(st.integers(min_value=0, max_value=99), label)
        assert isinstance(roll, int)
        return roll >= 100 - percent

    # -- one move -------------------------------------------------------------------------------

    def move(self, quiet: bool) -> NextStep:
        """Maybe something from outside happens, then a worker runs the decided step."""
        if not quiet and self.chance("user writes", 15):
            self.thread.user("and another thing")
        if self.chance("newer code writes", 5):
            self.thread.unknown(tick=False)
        if self.stalled and self.chance("a stalled worker wakes", 25):
            self.wake(self.stalled.pop(0))
        now = self.thread.next_time
        decision = project_next_step(self.thread.events, now, POLICY)
        assert decision == project_next_step(self.thread.events, now, POLICY)
        check_promises(self.thread.events, decision, self.answered)
        if decision.kind is StepKind.LLM_CALL:
            self.llm_step(decision, quiet)
        elif decision.kind is StepKind.TOOL_EXECUTION:
            self.tool_step(decision)
        elif decision.kind in (StepKind.IN_FLIGHT, StepKind.RETRY_LATER):
            assert decision.not_before is not None
            assert decision.not_before > now
            self.thread.wait(decision.not_before - now + timedelta(seconds=1))
        elif decision.kind is StepKind.TERMINATION:
            self.thread.complete(COMPLETION.get(decision.reason or "", "terminated"))
        elif decision.kind is StepKind.WAIT_FOR_USER and not quiet and self.chance("asks", 50):
            self.thread.user("a new question")
        return decision

    def llm_step(self, decision: NextStep, quiet: bool) -> None:
        assert decision.step_id is not None
        assert 1 <= decision.attempt <= POLICY.max_llm_attempts
        step = self.thread.claim(
            decision.step_id, attempt=decision.attempt, lease=LEASE, context_position=decision.head
        )
        claim = self.thread.head
        if not quiet and self.chance("user writes while the model thinks", 15):
            self.thread.user("one more detail")
        outcome = self.draw(st.sampled_from(LLM_OUTCOMES), "llm")
        if outcome == "answer":
            self.respond(step, claim, decision.head)
        elif outcome == "fail":
            self.fail_llm(step, decision.attempt)
        elif outcome == "stall":
            self.stalled.append(Stalled(step, decision.attempt, claim))

    def respond(self, step: str, claim: int, context_position: int) -> None:
        n_calls = self.draw(st.integers(min_value=0, max_value=2), "tool calls")
        assert isinstance(n_calls, int)
        calls = tuple(call(f"call-{self.calls_made + i}") for i in range(n_calls))
        self.calls_made += n_calls
        if self.thread.respond(step, "" if calls else "an answer", calls, caused_by=claim):
            self.answered[step] = context_position

    def fail_llm(self, step: str, attempt: int) -> None:
        retryable = self.chance("retryable", 80) and attempt < POLICY.max_llm_attempts
        backoff = timedelta(seconds=2**attempt) if retryable else None
        self.thread.fail_llm(step, retryable=retryable, attempt=attempt, retry_after=backoff)

    def tool_step(self, decision: NextStep) -> None:
        assert decision.step_id is not None
        assert 1 <= decision.attempt <= POLICY.max_tool_attempts
        assert decision.tool_calls == project_pending_tool_calls(self.thread.events)
        llm_step = self._llm_step_of(decision.step_id)
        self.thread.request_tools(llm_step, decision.tool_calls, attempt=decision.attempt)
        claim = self.thread.head
        outcome = self.draw(st.sampled_from(TOOL_OUTCOMES), "tools")
        if outcome == "stall":
            self.stalled.append(Stalled(llm_step, decision.attempt, claim, decision.tool_calls))
        elif outcome == "run":
            for tool_call in decision.tool_calls:
                self.run_tool(llm_step, tool_call, decision.attempt)

    def run_tool(self, llm_step: str, tool_call: ToolCall, attempt: int) -> None:
        result = self.draw(st.sampled_from(TOOL_RESULTS), "tool result")
        if result == "ok":
            self.thread.complete_tool(llm_step, tool_call)
        else:
            retryable = result == "retryable" and attempt < POLICY.max_tool_attempts
            self.thread.fail_tool(llm_step, tool_call, retryable=retryable, attempt=attempt)

    def wake(self, worker: Stalled) -> None:
        """A late outcome: written unless the store already holds one under the same id."""
        if worker.calls:
            for tool_call in worker.calls:
                self.run_tool(worker.step_id, tool_call, worker.attempt)
            return
        context = self.thread.events[worker.claim_position].event
        if self.chance("late answer", 70):
            context_position = getattr(context, "context_position", -1)
            self.respond(worker.step_id, worker.claim_position, context_position)
        else:
            self.fail_llm(worker.step_id, worker.attempt)

    def _llm_step_of(self, tool_step: str) -> str:
        for recorded in self.thread.events:
            step = getattr(recorded.event, "step_id", None)
            if isinstance(step, str) and tool_step_id(step) == tool_step:
                return step
        raise AssertionError(f"no LLM step leads to tool step {tool_step}")


def check_promises(
    events: Sequence[Recorded[Event]], decision: NextStep, answered: dict[str, int]
) -> None:
    messages = project_llm_context(events).messages
    _tool_results_follow_their_calls(messages, complete=decision.kind is StepKind.LLM_CALL)
    if decision.kind is StepKind.LLM_CALL:
        assert messages, "an LLM call with nothing to say"
        assert isinstance(messages[-1], UserTurn | ToolResult), "the model would talk to itself"
    if decision.kind is StepKind.WAIT_FOR_USER:
        asked = [r.position for r in events if isinstance(r.event, UserMessageAdded)]
        if asked:
            assert max(answered.values(), default=-1) >= max(asked), "a message was never answered"
            last = messages[-1]
            assert isinstance(last, AssistantTurn)
            assert not last.tool_calls


def _tool_results_follow_their_calls(messages: Sequence[Message], complete: bool) -> None:
    """Each call's result sits right behind its assistant turn (all of them, before a call)."""
    for index, message in enumerate(messages):
        if isinstance(message, AssistantTurn) and message.tool_calls:
            following = messages[index + 1 : index + 1 + len(message.tool_calls)]
            results = [m.tool_call_id for m in following if isinstance(m, ToolResult)]
            expected = [c.id for c in message.tool_calls]
            if complete:
                assert results == expected, "a tool result is missing or misplaced"
            else:
                assert results == [c for c in expected if c in results], "misordered results"
        if isinstance(message, ToolResult):
            previous = messages[index - 1] if index else None
            assert isinstance(previous, AssistantTurn | ToolResult), "an orphan tool result"


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_driven_threads_keep_the_step_protocol(data: st.DataObject) -> None:
    sim = Simulation(data)
    sim.thread.started()
    sim.thread.user("hello")
    for _ in range(MOVES):
        if sim.move(quiet=False).kind is StepKind.DONE:
            return
    for _ in range(QUIET_MOVES):
        if sim.move(quiet=True).kind in (StepKind.DONE, StepKind.WAIT_FOR_USER):
            return
    raise AssertionError("the thread neither finished its turn nor ended")
