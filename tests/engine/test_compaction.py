"""Compaction through the engine and the real store: a long thread's calls stay bounded."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.engine.doubles import Clock, EchoTools, new_thread

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.engine.view import ThreadView
from messagedb_agent.events import ContextCompacted, LLMCallRequested
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.llm.prompts import COMPACTION_PROMPT
from messagedb_agent.llm.types import ContextSummary, LLMConfig, LLMResponse, Message, ToolSpec
from messagedb_agent.projections.llm_context import estimate_tokens
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import add_message
from messagedb_agent.threads.reading import read_thread

BUDGET = 400


@dataclass
class Recording:
    """The offline model, recording the size of every context it is given."""

    model: OfflineModel = field(default_factory=OfflineModel)
    reply_sizes: list[int] = field(default_factory=list)
    compactions: int = 0
    during_compaction: list[str] = field(default_factory=list)
    store: MessageStore | None = None
    thread_id: str = ""

    def call(
        self, messages: list[Message], tools: list[ToolSpec], config: LLMConfig
    ) -> LLMResponse:
        if config.system_prompt == COMPACTION_PROMPT:
            self.compactions += 1
            if self.during_compaction and self.store is not None:
                text = self.during_compaction.pop()
                add_message(self.store, self.thread_id, owner="alice", message=text, now=Clock()())
        else:
            self.reply_sizes.append(sum(estimate_tokens(m) for m in messages))
        return self.model.call(messages, tools, config)


def engine_for(store: MessageStore, model: Recording) -> Engine:
    config = EngineConfig(model="offline", context_budget=BUDGET)
    return Engine(store, model, EchoTools(), config, clock=Clock(), worker="test")


def test_a_long_thread_is_compacted_and_every_call_stays_within_the_budget(
    store: MessageStore,
) -> None:
    model = Recording()
    engine = engine_for(store, model)
    thread = new_thread(store, "hello there, " + "please remember this detail. " * 5)
    run_until_idle(engine, thread.notification, chain=10)
    for n in range(40):
        text = f"message {n}: " + "tell me something about the weather today. " * 3
        appended = add_message(store, thread.thread_id, owner="alice", message=text, now=Clock()())
        run_until_idle(engine, appended.notification, chain=10)
    events = read_thread(store, thread.stream_name)
    compactions = [e.event for e in events if isinstance(e.event, ContextCompacted)]
    assert len(compactions) >= 3
    assert model.compactions == len(compactions)  # each ran once
    assert max(model.reply_sizes[-20:]) <= BUDGET
    claims = [e.event for e in events if isinstance(e.event, LLMCallRequested)]
    assert sum(c.purpose == "compaction" for c in claims) == len(compactions)
    # every user message was answered, compacted or not
    replies = sum(1 for e in events if e.type == "LLMResponseReceived")
    assert replies == 41


def test_a_message_that_arrives_during_a_compaction_is_kept_and_answered(
    store: MessageStore,
) -> None:
    model = Recording(store=store)
    engine = engine_for(store, model)
    thread = new_thread(store, "start " + "filler words here. " * 30)
    model.thread_id = thread.thread_id
    run_until_idle(engine, thread.notification, chain=10)
    for n in range(6):
        appended = add_message(
            store,
            thread.thread_id,
            owner="alice",
            message=f"turn {n} " + "more words. " * 30,
            now=Clock()(),
        )
        if n == 5:
            model.during_compaction.append("sent while summarising")
        run_until_idle(engine, appended.notification, chain=10)
    events = read_thread(store, thread.stream_name)
    assert any(isinstance(e.event, ContextCompacted) for e in events)
    late = next(e for e in events if getattr(e.event, "message", None) == "sent while summarising")
    answered_after = [
        e for e in events if e.type == "LLMResponseReceived" and e.position > late.position
    ]
    assert answered_after
    last_context = ThreadView(events).context().messages
    assert isinstance(last_context[0], ContextSummary)
    assert any(getattr(m, "text", "") == "sent while summarising" for m in last_context)
