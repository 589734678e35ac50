"""The step streams a real provider's reply as it is made: Gemini and Claude through their SDKs
against the strict Vertex stand-in, their text deltas on the thread's channel while the event
stays the whole truth, and a stream broken off in the middle retried as a new attempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from google.oauth2.credentials import Credentials
from tests.engine.doubles import Clock, EchoTools, new_thread
from tests.llm.fake_vertex import FakeVertex, claude_reply, gemini_reply

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import LLMCallFailed, LLMResponseReceived
from messagedb_agent.live.deltas import TextDelta, channel_of, decode
from messagedb_agent.llm.claude import ClaudeModel
from messagedb_agent.llm.gemini import GeminiModel
from messagedb_agent.llm.types import LLMClient
from messagedb_agent.notification import Notification
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.reading import read_thread

REPLY = (
    "I have added buy milk to your list. It is your third task today, after the dentist and "
    "the car, so the afternoon is still free if you want to add anything else."
)
PROJECT, LOCATION = "demo-project", "global"


@pytest.fixture
def vertex() -> Iterator[FakeVertex]:
    server = FakeVertex().start()
    yield server
    server.stop()


def client(provider: str, vertex: FakeVertex) -> tuple[LLMClient, str, dict[str, Any]]:
    """The real client, the model it asks for, and the whole reply to script for it."""
    credentials = Credentials(token="t")  # type: ignore[no-untyped-call]
    if provider == "gemini":
        model = GeminiModel(
            project=PROJECT, location=LOCATION, base_url=vertex.url, credentials=credentials
        )
        return model, "gemini-3.8-flash", gemini_reply({"text": REPLY})
    claude = ClaudeModel(
        project=PROJECT, location=LOCATION, base_url=vertex.url, credentials=credentials
    )
    return claude, "claude-sonnet-5-5", claude_reply({"type": "text", "text": REPLY})


def deltas_sent(database_url: str, store: MessageStore, run: Any) -> tuple[list[TextDelta], str]:
    """Everything NOTIFYed on the new thread's channel while `run(thread)` ran."""
    thread = new_thread(store, "add a task to buy milk")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {channel_of(thread.stream_name)}")
        run(thread)
        received = [decode(n.payload) for n in conn.notifies(timeout=0.5, stop_after=None)]
    return [d for d in received if d is not None], thread.stream_name


@pytest.mark.parametrize("provider", ["gemini", "claude"])
def test_the_models_text_streams_to_the_threads_channel_and_the_event_holds_all_of_it(
    store: MessageStore, database_url: str, vertex: FakeVertex, clock: Clock, provider: str
) -> None:
    llm, model, body = client(provider, vertex)
    vertex.reply(body, pace=0.06)  # pieces slower than one flush apart: several notifications
    engine = Engine(store, llm, EchoTools(), EngineConfig(model=model), clock=clock, worker="t")

    deltas, stream = deltas_sent(
        database_url, store, lambda t: run_until_idle(engine, t.notification, max_wait=0)
    )

    assert vertex.last.streamed
    answers = [e for e in read_thread(store, stream) if isinstance(e.event, LLMResponseReceived)]
    assert [a.event.response_text for a in answers] == [REPLY]
    assert len(deltas) >= 3
    assert [d.seq for d in deltas] == list(range(len(deltas)))
    assert {(d.step, d.attempt) for d in deltas} == {(answers[0].event.step_id, 1)}
    assert all(d.full for d in deltas)  # a short reply: each carries the text so far
    assert deltas[-1].text == REPLY
    assert all(REPLY.startswith(d.text) for d in deltas)


@pytest.mark.parametrize("provider", ["gemini", "claude"])
def test_a_stream_broken_off_midway_is_retried_as_a_new_attempt_whose_text_starts_over(
    store: MessageStore, database_url: str, vertex: FakeVertex, clock: Clock, provider: str
) -> None:
    llm, model, body = client(provider, vertex)
    vertex.reply(body, pace=0.06, fail_after=4)
    vertex.reply(body)
    engine = Engine(store, llm, EchoTools(), EngineConfig(model=model), clock=clock, worker="t")

    def run(thread: Any) -> None:
        run_until_idle(engine, thread.notification, max_wait=0)
        head = read_thread(store, thread.stream_name)[-1]
        clock.advance(60)  # past the retry's backoff
        notification = Notification(stream_name=thread.stream_name, position=head.position)
        run_until_idle(engine, notification, max_wait=0)

    deltas, stream = deltas_sent(database_url, store, run)

    events = [e.event for e in read_thread(store, stream)]
    failed = [e for e in events if isinstance(e, LLMCallFailed)]
    answered = [e for e in events if isinstance(e, LLMResponseReceived)]
    assert len(failed) == 1
    assert failed[0].retryable
    assert [a.response_text for a in answered] == [REPLY]
    by_attempt = {d.attempt: d for d in deltas}  # the last delta of each attempt
    assert set(by_attempt) == {1, 2}
    assert REPLY.startswith(by_attempt[1].text)
    assert by_attempt[1].text != REPLY  # the broken attempt never had it all
    assert by_attempt[2].text == REPLY
