"""One step of a thread: read, decide, claim, execute, append. Stateless and exactly-once.

The protocol (the invariants are in docs/architecture.md):
- read the thread and decide the next step purely from its events and `now`;
- a notification older than the head is stale: acknowledged, nothing done;
- claim the step by appending its request event(s) with `expected_version` = the head read, so
  of several concurrent workers exactly one proceeds; a claim carries a lease after which a
  silent claimant's step is offered again;
- execute exactly one effect (one LLM call, the pending tool calls, or one reply delivery)
  and append its results under ids derived from the step id, so a retried or duplicated worker
  can never write a result twice, and a user message that arrived meanwhile neither blocks nor
  duplicates them;
- return the notification for the new head, which the caller publishes (or runs in-process).

A step whose tool calls are all pure (`ToolExecutor.is_pure`: no effect outside this process,
bounded time, such as `echo` and `calculate`) has no effect to protect, so its calls run before
its claim is written, and the claim and the results are written together, in the next step's
write, at the same `expected_version`: all of them or none. Nothing outside the process can
tell the difference from a claim written first, except that the claim never stands alone as
the head; and if the stream moved meanwhile, the unwritten claim and results are dropped and
the step is decided again on the thread as it is.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from messagedb_agent.channels.callback import DeliveryError, ReplySender
from messagedb_agent.engine import effects
from messagedb_agent.engine.cache import ViewCache
from messagedb_agent.engine.effects import EngineConfig, Pending
from messagedb_agent.engine.snapshot import Snapshots
from messagedb_agent.engine.view import ThreadView
from messagedb_agent.events.base import Event, Metadata, Recorded
from messagedb_agent.events.delivery import ReplyDeliveryRequested
from messagedb_agent.events.mapper import to_messages
from messagedb_agent.events.values import ToolCall
from messagedb_agent.live.deltas import DeltaPublisher
from messagedb_agent.llm import errors
from messagedb_agent.llm.types import LLMClient, LLMError, ToolSpec
from messagedb_agent.notification import Notification
from messagedb_agent.projections.next_step import NextStep, StepKind
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import ConcurrencyError, DuplicateMessageError
from messagedb_agent.threads.reading import read_thread
from messagedb_agent.tools.context import ToolContext, ToolOutcome

# What a chat conversation is told while a long turn runs (`Engine._noticed`).
BUSY_NOTICE = "Working on it…"


class ToolExecutor(Protocol):
    """What the engine needs from the tools layer: their specs, and a way to run one call."""

    def specs(self) -> list[ToolSpec]: ...

    def run(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome: ...

    def is_pure(self, call: ToolCall) -> bool:
        """Whether running `call` has no effect outside this process and ends in bounded time,
        so that it may run before its claim is written (see the module's docstring)."""
        ...


@dataclass(frozen=True, slots=True)
class StepResult:
    outcome: StepKind  # EXECUTED, or why nothing was run (see StepKind)
    stream_name: str
    kind: StepKind | None = None  # the last step decided (and run, when EXECUTED)
    step_id: str | None = None
    follow_ups: tuple[Notification, ...] = ()
    not_before: datetime | None = None
    turn_completed: bool = False
    reply: str | None = None
    steps: int = 0


Unwritten = tuple[Event, str, Metadata]  # an event, its message id and its metadata


@dataclass(frozen=True, slots=True)
class _Unwritten:
    """Events folded into the view but not yet in the store, to be written after `after`.

    The first `owed` are the results of claims already written: they are appended whatever
    happened meanwhile. The rest are pure tool steps' claims and results: written at `after`,
    together with whatever follows them, or not at all. `claim` is the last claim among them
    (or `after`): the next step's claim follows it, as it would had it been written alone,
    and `follows` is that metadata (its results' own).
    """

    after: Recorded[Event]
    events: list[Unwritten]
    claim: Recorded[Event]
    owed: int
    follows: Metadata

    @property
    def pending(self) -> list[Pending]:
        return [(event, id_) for event, id_, _ in self.events]


@dataclass(frozen=True, slots=True)
class _Step:
    """One pass of the protocol: its decision, and what it left to append."""

    decision: NextStep
    view: ThreadView
    claimed: bool = False
    # its own results when it claimed; else the previous step's, which it could not carry
    unwritten: _Unwritten | None = None
    reply: str | None = None
    pure: bool = False  # its claim and results are not written yet (see `_Unwritten`)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """Runs steps; holds no thread state between calls, so any instance can run any step."""

    def __init__(
        self,
        store: MessageStore,
        llm: LLMClient,
        tools: ToolExecutor,
        config: EngineConfig | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        worker: str | None = None,
        replies: ReplySender | None = None,
        views: ViewCache | None = None,
    ) -> None:
        self.store = store
        self.llm = llm
        self.tools = tools
        self.replies = replies
        self.views = views
        self.config = config or EngineConfig()
        self.clock = clock
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        interval = self.config.snapshot_interval
        self.snapshots = (
            Snapshots(store, interval, self.config.tool_result_max_chars) if interval else None
        )

    def advance(
        self,
        notification: Notification,
        *,
        max_steps: int = 1,
        budget_seconds: float | None = None,
    ) -> StepResult:
        """Run up to `max_steps` steps in a row while this worker holds the thread.

        Chaining wraps the single step and nothing more: each step's results are written in
        one transaction with the next step's claim, so a chain costs one commit per step, and
        the `expected_version` of that write detects anything appended meanwhile (a user
        message): the results then go in on their own and the thread is read again.
        """
        stream = notification.stream_name
        view = self._read(stream, notification.position)  # read
        if view is None:
            return StepResult(StepKind.EMPTY, stream)
        if notification.position != view.head.position:
            # Older: the head has (or will get) its own notification. Newer: not a position
            # this stream has; a bogus or misrouted message. Either way there is nothing to do.
            self._keep(view)
            return StepResult(StepKind.STALE, stream)
        deadline = time.monotonic() + budget_seconds if budget_seconds is not None else None
        steps: list[_Step] = []
        carry: _Unwritten | None = None
        while True:
            step = self._step(view, carry)
            steps.append(step)
            view, carry = step.view, step.unwritten
            if step.claimed and not step.pure:
                _confirm(steps)  # its write carried the pure steps before it
            ran = sum(s.claimed for s in steps)  # steps claimed and executed
            in_budget = deadline is None or time.monotonic() < deadline
            if not step.claimed:
                if carry is None:
                    break
                view, moved = self._append(carry, view)
                _settle(steps, moved)
                carry = None
                ran = sum(s.claimed for s in steps)
                if moved and ran < max_steps and in_budget:
                    continue  # something was appended meanwhile: decide again on it
                break
            if ran >= max_steps or not in_budget:
                break
            if carry is not None and effects.backoff_until(carry.pending) is not None:
                break  # a failure to retry: the backoff is somebody else's wait
        if carry is not None:
            view, moved = self._append(carry, view)  # append
            _settle(steps, moved)
        if self.snapshots is not None and self.snapshots.due(view):
            self.snapshots.save(view)  # everything in the view is written by now
        self._keep(view)
        return self._result(stream, view, steps, max_steps)

    def _step(self, view: ThreadView, carry: _Unwritten | None) -> _Step:
        """Decide, claim, execute: one step on `view`, which holds the thread up to now.

        `carry` is the previous step's results, still unwritten: they are written together
        with this step's claim. This step's own results are folded into the view as if written
        and handed back for the next step (or `advance`) to append.
        """
        now = self.clock()
        decision = view.decide(now, self.config.policy, self.config.context_budget)  # decide
        if not decision.kind.is_work:
            return _Step(decision, view, unwritten=carry)
        claims = effects.claims(decision, view, now, self.config, self.worker)
        after = carry.after if carry is not None else view.head
        carried = carry.events if carry is not None else []
        meta = carry.follows if carry is not None else effects.metadata(view.head)
        batch = carried + [(event, id_, meta) for event, id_ in claims]
        pure = self._pure(decision)
        if pure:  # nothing to protect: run first, claim with the next write (see the module)
            view.extend(effects.recorded(after, claims, view.head.position + 1, now, meta))
        else:
            written = self._write(after, batch)  # claim
            if written is None:  # another worker, or a new message, came first
                return _Step(decision, view, unwritten=carry)
            view.extend(written[len(carried) :])
        head = view.head
        results = self._execute(decision, view, now)  # execute
        meta = effects.metadata(head)
        view.extend(effects.recorded(head, results, head.position + 1, self.clock(), meta))
        done = [(event, id_, meta) for event, id_ in results]
        if pure:
            owed = carry.owed if carry is not None else 0
            unwritten: _Unwritten | None = _Unwritten(after, batch + done, head, owed, meta)
        else:
            unwritten = _Unwritten(head, done, head, len(done), meta) if done else None
        reply = effects.turn_reply(claims + results)
        return _Step(decision, view, True, unwritten, reply, pure)

    def _pure(self, decision: NextStep) -> bool:
        calls = decision.tool_calls
        return (
            decision.kind is StepKind.TOOL_EXECUTION
            and bool(calls)
            and all(
                self.tools.is_pure(call)
                and not effects.awaits_approval(decision, call, self.config)
                and not effects.in_doubt(decision, call, self.config)
                for call in calls
            )
        )

    # -- the effects --------------------------------------------------------------------------

    def _execute(self, decision: NextStep, view: ThreadView, now: datetime) -> list[Pending]:
        """The one effect of a claimed step, as the events that record its outcome."""
        if decision.kind is StepKind.LLM_CALL:
            return self._noticed(decision, view, now, self._call_model)
        if decision.kind is StepKind.COMPACTION:
            return self._noticed(decision, view, now, self._compact)
        if decision.kind is StepKind.TOOL_EXECUTION:
            if self._pure(decision):
                return self._run_tools(decision, view, now)  # at once: nothing to notice
            return self._noticed(decision, view, now, self._run_tools)
        if decision.kind is StepKind.DELIVER_REPLY:
            return self._deliver(decision, view, now)
        return []  # a termination: its claim is the whole of it

    def _noticed(
        self,
        decision: NextStep,
        view: ThreadView,
        now: datetime,
        run: Callable[[NextStep, ThreadView, datetime], list[Pending]],
    ) -> list[Pending]:
        """`run`, and if the turn is still running `busy_notice_after` past the person's
        message, a chat platform's "Working on it…" posted meanwhile and recorded with the
        results (`BusyNoticePosted`); the turn's next delivery replaces it."""
        started = view.started
        url = started.callback_url if started is not None else None
        notices, notice = (getattr(self.replies, n, None) for n in ("notices", "notice"))
        if not (url and notices and notice and notices(url)):
            return run(decision, view, now)
        due = effects.busy_notice_due(view, now, self.config)
        if due is None:
            return run(decision, view, now)
        posted: list[str] = []

        def post() -> None:
            reference = notice(url, BUSY_NOTICE, decision.step_id or "")
            if reference:
                posted.append(reference)

        timer = threading.Timer(due, post)
        timer.daemon = True
        timer.start()
        try:
            results = run(decision, view, now)
        finally:
            timer.cancel()
            timer.join()  # a notice on its way is posted, and recorded, before the results
        if posted:
            return [*results, effects.busy_noticed(decision.step_id or "", posted[0])]
        return results

    def _run_tools(self, decision: NextStep, view: ThreadView, now: datetime) -> list[Pending]:
        return [
            self._run_tool(decision, call, view, now)
            for call in decision.tool_calls
            if not effects.awaits_approval(decision, call, self.config)
            and not effects.in_doubt(decision, call, self.config)
        ]

    def _call_model(self, decision: NextStep, view: ThreadView, now: datetime) -> list[Pending]:
        config = effects.llm_config(view, self.config)
        step_id = decision.step_id or ""
        deltas = DeltaPublisher(self.store, view.stream_name, step_id, decision.attempt)
        config = replace(config, on_text=deltas)
        messages = list(view.context().messages)
        self._show_busy(view)
        started = time.perf_counter()
        try:
            response = self.llm.call(messages, self.tools.specs(), config)
        except LLMError as error:
            return effects.llm_failed(decision, error, now, self.config, config.model)
        finally:
            deltas.flush()
        latency_ms = (time.perf_counter() - started) * 1000
        return effects.llm_answered(step_id, response, latency_ms)

    def _show_busy(self, view: ThreadView) -> None:
        """A chat platform's busy sign before a model call, where it has one (`RoutedReplies`)."""
        started = view.started
        url = started.callback_url if started is not None else None
        busy = getattr(self.replies, "busy", None)
        if url and busy is not None:
            busy(url)

    def _compact(self, decision: NextStep, view: ThreadView, now: datetime) -> list[Pending]:
        """Summarise the oldest part of the context; no tools, so nothing else can happen."""
        config = effects.llm_config(view, self.config)
        plan = view.compaction(self.config.context_budget or 0)
        started = time.perf_counter()
        try:
            if plan is None:  # the budget moved since the claim: nothing left to summarise
                raise LLMError("nothing to summarise", kind="nothing_to_compact", retryable=False)
            response = self.llm.call(plan.request(), [], config)
            if not response.text.strip():
                raise errors.empty_reply("the summary came back empty")
        except LLMError as error:
            return effects.llm_failed(decision, error, now, self.config, config.model)
        latency_ms = (time.perf_counter() - started) * 1000
        return effects.compacted(decision.step_id or "", plan, response, latency_ms)

    def _run_tool(
        self, decision: NextStep, call: ToolCall, view: ThreadView, now: datetime
    ) -> Pending:
        context = ToolContext(
            owner=view.owner,
            stream_name=view.stream_name,
            step_id=decision.step_id or "",
            tool_call_id=call.id,
            store=self.store,
            now=now,
        )
        return effects.tool_ran(decision, call, self.tools.run(call, context), now, self.config)

    def _deliver(self, decision: NextStep, view: ThreadView, now: datetime) -> list[Pending]:
        claim = view.head.event
        assert isinstance(claim, ReplyDeliveryRequested)
        if self.replies is None:
            error = DeliveryError("no reply sender is configured", retryable=False)
            return effects.delivery_failed(decision, error, now, self.config)
        reply = view.event_at(claim.reply_position)
        if reply is None:  # before the snapshot the view was restored from
            earlier = read_thread(
                self.store, view.stream_name, claim.reply_position, after=claim.reply_position - 1
            )
            reply = earlier[0] if earlier else None
        try:
            status = self.replies.send(
                claim.callback_url,
                effects.reply_body(view, claim, reply),
                claim.step_id,
                skip=effects.parts_delivered(view, claim.step_id),
            )
        except DeliveryError as error:
            return effects.delivery_failed(decision, error, now, self.config)
        return effects.delivered(decision, status)

    # -- reading and writing -------------------------------------------------------------------

    def _read(self, stream: str, head: int | None = None) -> ThreadView | None:
        """The thread as of now: a cached view plus its tail, a snapshot plus its tail, or a
        full read. `head` is where the thread's head is believed to be: a thread too short to
        have a snapshot is not looked up for one."""
        cached = self.views.take(stream) if self.views is not None else None
        if cached is not None:
            cached.extend(read_thread(self.store, stream, after=cached.head.position))
            return cached
        if self.snapshots is not None and (head is None or self.snapshots.may_exist(head)):
            restored = self.snapshots.load(stream)
            if restored is not None:
                return restored
        events = read_thread(self.store, stream)
        return self._view(events) if events else None

    def _view(self, events: list[Recorded[Event]]) -> ThreadView:
        return ThreadView(events, tool_result_max_chars=self.config.tool_result_max_chars)

    def _keep(self, view: ThreadView) -> None:
        if self.views is not None:
            self.views.put(view)

    def _write(
        self, head: Recorded[Event], events: list[Unwritten]
    ) -> list[Recorded[Event]] | None:
        """Append `events` at exactly `head`; None when anything else was appended first."""
        batch = to_messages(events)
        try:
            position = self.store.write_messages(
                head.stream_name, batch, expected_version=head.position
            )
        except (ConcurrencyError, DuplicateMessageError):
            return None
        first, now, stream = position - len(batch) + 1, self.clock(), head.stream_name
        return [
            Recorded(id_, stream, first + i, -1, now, event, meta)
            for i, (event, id_, meta) in enumerate(events)
        ]

    def _append(self, results: _Unwritten, view: ThreadView) -> tuple[ThreadView, bool]:
        """Append results after their head; if the stream moved on, on their own.

        On their own means without `expected_version`, skipping ids that exist (a taken-over
        attempt may have written one), and only the results of claims already written: pure
        steps' unwritten claims and results are dropped. The thread is then read again, as it
        really is, and the second value says so.
        """
        head = results.after
        if self._write(head, results.events) is not None:
            return view, False
        owed = results.events[: results.owed]
        for (_, id_, _), message in zip(owed, to_messages(owed), strict=True):
            try:
                self.store.write_message(
                    id_, head.stream_name, message.type, message.data, message.metadata
                )
            except DuplicateMessageError:
                continue
        fresh = self._read(head.stream_name)
        assert fresh is not None  # it holds at least `head`
        return fresh, True

    def _result(
        self, stream: str, view: ThreadView, steps: list[_Step], max_steps: int
    ) -> StepResult:
        ran = [s for s in steps if s.claimed]
        if not ran:
            first = steps[0].decision
            outcome = first.kind if not first.kind.is_work else StepKind.LOST_CLAIM
            return StepResult(
                outcome, stream, first.kind, first.step_id, not_before=first.not_before
            )
        last, stop = ran[-1], steps[-1]
        replies = [s.reply for s in ran if s.reply is not None]
        if stop.claimed:
            not_before = effects.backoff_until(stop.unwritten.pending if stop.unwritten else [])
        else:
            not_before = stop.decision.not_before
        upcoming = view.decide(self.clock(), self.config.policy, self.config.context_budget).kind
        follow_up = upcoming is not StepKind.DONE and (
            max_steps == 1
            or not replies
            or not_before is not None  # a backoff to wait out: the caller needs the head
            or upcoming.is_work
        )
        return StepResult(
            StepKind.EXECUTED,
            stream,
            last.decision.kind,
            last.decision.step_id,
            follow_ups=(Notification(stream_name=stream, position=view.head.position),)
            if follow_up
            else (),
            not_before=not_before,
            turn_completed=bool(replies),
            reply=replies[-1] if replies else None,
            steps=len(ran),
        )


def _confirm(steps: list[_Step]) -> None:
    """The pure steps before the last one are written now: with its claim."""
    for index, step in enumerate(steps):
        if step.pure:
            steps[index] = replace(step, pure=False)


def _settle(steps: list[_Step], moved: bool) -> None:
    """After the chain's last write: its pure steps were written with it, or, when the stream
    had moved on, dropped (never claimed: the thread decides them again)."""
    for index, step in enumerate(steps):
        if step.pure:
            steps[index] = replace(step, pure=False, claimed=step.claimed and not moved)
