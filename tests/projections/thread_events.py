"""Builds recorded thread histories in memory, the way the engine would write them.

Positions are consecutive from 0 and each event is one second after the previous one, so a
test can say "now is 30 seconds after the claim" without juggling clocks; an event added with
`tick=False` shares the previous event's time. Message ids follow
the engine's scheme; adding an event whose id already exists is dropped, as the database
would drop a retried result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from messagedb_agent.events import (
    ErrorOccurred,
    Event,
    LLMCallFailed,
    LLMCallRequested,
    LLMResponseReceived,
    Metadata,
    Recorded,
    SessionCompleted,
    SessionStarted,
    SessionTerminationRequested,
    TokenUsage,
    ToolCall,
    ToolExecutionCompleted,
    ToolExecutionFailed,
    ToolExecutionRequested,
    UnknownEvent,
    UserMessageAdded,
)
from messagedb_agent.events.ids import llm_step_id, message_id, tool_step_id
from messagedb_agent.events.system import CompletionReason

STREAM = "thread-6a1d1b7e-2f43-4a5e-9c1d-7d1f0e2b3c4d"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(seconds=1)
LLM_LEASE = timedelta(minutes=2)
TOOL_LEASE = timedelta(minutes=1)


def call(call_id: str, name: str = "lookup", **arguments: Any) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=arguments)


class ThreadEvents:
    """A thread under construction; `events` is what a projection is given."""

    def __init__(self, stream: str = STREAM, start: datetime = T0) -> None:
        self.stream = stream
        self.start = start
        self.events: list[Recorded[Event]] = []
        self._ids: set[str] = set()
        self._ticks = 0
        self._waited = timedelta()

    @property
    def head(self) -> int:
        return len(self.events) - 1

    @property
    def now(self) -> datetime:
        """The time of the latest event (or of the thread's start when it is empty)."""
        return self.events[-1].time if self.events else self.start

    @property
    def next_time(self) -> datetime:
        """The time the next ticking event will get."""
        return self.start + self._waited + TICK * self._ticks

    def wait(self, duration: timedelta) -> None:
        """Let time pass before the next event."""
        self._waited += duration

    def add(
        self, event: Event, id: str | None = None, caused_by: int | None = None, tick: bool = True
    ) -> Recorded[Event] | None:
        """Append `event`; None when `id` was written before (the store refuses duplicates).

        `caused_by` names the position of the event that led to this one, as the engine's
        `Metadata.follow` records it.
        """
        position = len(self.events)
        id = id or f"{self.stream}/{position}"
        if id in self._ids:
            return None
        self._ids.add(id)
        if tick:
            time = self.next_time
            self._ticks += 1
        else:
            time = self.now
        recorded: Recorded[Event] = Recorded(
            id=id,
            stream_name=self.stream,
            position=position,
            global_position=1000 + position,
            time=time,
            event=event,
            metadata=Metadata(
                correlation_stream_name=self.stream,
                user_id="ada",
                causation_message_stream_name=None if caused_by is None else self.stream,
                causation_message_position=caused_by,
            ),
        )
        self.events.append(recorded)
        return recorded

    def has(self, id: str) -> bool:
        return id in self._ids

    # -- what users and the outside world write -------------------------------------------------

    def started(
        self,
        *,
        owner: str = "ada",
        title: str | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
    ) -> None:
        self.add(
            SessionStarted(
                thread_id=self.stream.removeprefix("thread-"),
                owner=owner,
                title=title,
                system_prompt=system_prompt,
                model=model,
            )
        )

    def user(self, text: str) -> int:
        self.add(UserMessageAdded(message=text))
        return self.head

    def unknown(
        self, type_name: str = "SomethingFromTheFuture", tick: bool = True, **data: Any
    ) -> None:
        self.add(UnknownEvent(type_name=type_name, data=data), tick=tick)

    def terminate(self, reason: str = "user_requested") -> None:
        self.add(SessionTerminationRequested(reason=reason, requested_by="ada"))

    def complete(self, reason: CompletionReason = "success", message: str | None = None) -> None:
        self.add(SessionCompleted(completion_reason=reason, message=message))

    def error(self, message: str = "the relay hiccuped") -> None:
        self.add(ErrorOccurred(error_type="RelayError", error_message=message))

    # -- what the engine writes for an LLM step ---------------------------------------------------

    def claim(
        self,
        step_id: str | None = None,
        *,
        attempt: int = 1,
        lease: timedelta = LLM_LEASE,
        context_position: int | None = None,
    ) -> str:
        """Claim an LLM step at the current head; the step id defaults to the head's."""
        head = self.head
        step = step_id or llm_step_id(self.stream, head)
        self.add(
            LLMCallRequested(
                step_id=step,
                attempt=attempt,
                model="offline",
                context_position=head if context_position is None else context_position,
                context_messages=head + 1,
                lease_expires_at=self.next_time + lease,
            ),
            message_id(step, f"claim-{attempt}"),
        )
        return step

    def respond(
        self,
        step_id: str,
        text: str = "",
        tool_calls: Sequence[ToolCall] = (),
        usage: TokenUsage | None = None,
        caused_by: int | None = None,
    ) -> bool:
        """Append the step's response; False when it already has one.

        `caused_by` is the position of the claim whose worker produced it (unknown if None).
        """
        recorded = self.add(
            LLMResponseReceived(
                step_id=step_id,
                response_text=text,
                tool_calls=tuple(tool_calls),
                model_name="offline",
                token_usage=usage or TokenUsage(input_tokens=10, output_tokens=5),
            ),
            message_id(step_id, "response"),
            caused_by,
        )
        return recorded is not None

    def fail_llm(
        self,
        step_id: str,
        *,
        retryable: bool,
        attempt: int = 1,
        retry_after: timedelta | None = None,
        message: str = "the model is overloaded",
    ) -> None:
        at = self.next_time
        self.add(
            LLMCallFailed(
                step_id=step_id,
                error_message=message,
                error_kind="overloaded" if retryable else "invalid_request",
                retryable=retryable,
                attempt=attempt,
                retry_at=at + retry_after if retry_after is not None else None,
            ),
            message_id(step_id, f"failure-{attempt}"),
        )

    # -- what the engine writes for a tool step --------------------------------------------------

    def request_tools(
        self,
        llm_step: str,
        calls: Sequence[ToolCall],
        *,
        attempt: int = 1,
        lease: timedelta = TOOL_LEASE,
    ) -> str:
        step = tool_step_id(llm_step)
        expires = self.next_time + lease
        for tool_call in calls:
            self.add(
                ToolExecutionRequested(
                    step_id=step,
                    tool_call_id=tool_call.id,
                    tool_name=tool_call.name,
                    arguments=tool_call.arguments,
                    attempt=attempt,
                    lease_expires_at=expires,
                ),
                message_id(step, f"request-{tool_call.id}-{attempt}"),
            )
        return step

    def complete_tool(self, llm_step: str, tool_call: ToolCall, result: Any = "ok") -> bool:
        step = tool_step_id(llm_step)
        recorded = self.add(
            ToolExecutionCompleted(
                step_id=step,
                tool_call_id=tool_call.id,
                tool_name=tool_call.name,
                result=result,
                execution_time_ms=3.0,
            ),
            message_id(step, f"result-{tool_call.id}"),
        )
        return recorded is not None

    def fail_tool(
        self,
        llm_step: str,
        tool_call: ToolCall,
        *,
        retryable: bool,
        attempt: int = 1,
        message: str = "the service timed out",
    ) -> bool:
        step = tool_step_id(llm_step)
        part = f"failure-{tool_call.id}-{attempt}" if retryable else f"result-{tool_call.id}"
        recorded = self.add(
            ToolExecutionFailed(
                step_id=step,
                tool_call_id=tool_call.id,
                tool_name=tool_call.name,
                error_message=message,
                error_kind="timeout" if retryable else "invalid_arguments",
                retryable=retryable,
                attempt=attempt,
            ),
            message_id(step, part),
        )
        return recorded is not None

    # -- whole steps, for brevity ----------------------------------------------------------------

    def answered_turn(self, question: str, answer: str) -> str:
        """A user message and a claimed LLM step that answered it; returns the step id."""
        self.user(question)
        step = self.claim()
        self.respond(step, answer)
        return step
