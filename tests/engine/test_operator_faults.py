"""An operator's mistake pauses a thread and never ends it; fixing it resumes the thread.

The real Gemini and Claude clients talk to the strict Vertex stand-in, which answers as Vertex
does: 401 for a token it does not accept, 403 for a denied permission, 404 for a model this
project or region does not serve (unknown, or shut down). Each thread waits, says so once,
and answers the message that waited once the fault is fixed and its retry falls due.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from google.oauth2.credentials import Credentials
from tests.engine.doubles import Clock, EchoTools, new_thread
from tests.llm.fake_vertex import FakeVertex, claude_reply, gemini_reply

from messagedb_agent.engine.effects import UNAVAILABLE_NOTICE, EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import ModelUnavailable
from messagedb_agent.llm.claude import ClaudeModel
from messagedb_agent.llm.gemini import GeminiModel
from messagedb_agent.llm.types import LLMClient
from messagedb_agent.notification import Notification
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.reading import read_thread

PROJECT, LOCATION = "demo-project", "global"
GOOD = "good-token"


@pytest.fixture
def vertex() -> Iterator[FakeVertex]:
    server = FakeVertex(authorize=lambda token: token == GOOD).start()
    yield server
    server.stop()


def gemini(vertex: FakeVertex, token: str = GOOD) -> GeminiModel:
    credentials = Credentials(token=token)  # type: ignore[no-untyped-call]
    return GeminiModel(
        project=PROJECT, location=LOCATION, base_url=vertex.url, credentials=credentials
    )


def claude(vertex: FakeVertex, token: str = GOOD) -> ClaudeModel:
    credentials = Credentials(token=token)  # type: ignore[no-untyped-call]
    return ClaudeModel(
        project=PROJECT, location=LOCATION, base_url=vertex.url, credentials=credentials
    )


def engine(store: MessageStore, llm: LLMClient, model: str, clock: Clock) -> Engine:
    return Engine(store, llm, EchoTools(), EngineConfig(model=model), clock=clock, worker="t")


def paused_then_resumed(store: MessageStore, engine: Engine, clock: Clock, fix: object) -> str:
    """Run a thread into the fault, check it waits, apply `fix`, and return the reply."""
    thread = new_thread(store, "what's on my list?")
    run_until_idle(engine, thread.notification, max_wait=0)
    events = read_thread(store, thread.stream_name)
    assert isinstance(events[-1].event, ModelUnavailable)
    assert events[-1].event.notice == UNAVAILABLE_NOTICE
    assert not any(e.type == "SessionCompleted" for e in events)
    assert callable(fix)
    fix()
    clock.advance(engine.config.unavailable_retry.total_seconds())
    head = read_thread(store, thread.stream_name)[-1]
    notification = Notification(stream_name=thread.stream_name, position=head.position)
    results = run_until_idle(engine, notification, max_wait=0)
    replies = [r.reply for r in results if r.reply]
    assert len(replies) == 1
    return replies[0]


def test_wrong_credentials_pause_the_thread_until_good_ones_are_deployed(
    store: MessageStore, vertex: FakeVertex, clock: Clock
) -> None:
    worker = engine(store, gemini(vertex, token="revoked"), "gemini-3.8-flash", clock)
    vertex.reply(gemini_reply({"text": "nothing yet"}, model_version="gemini-3.8-flash"))

    def fix() -> None:
        worker.llm = gemini(vertex)

    assert paused_then_resumed(store, worker, clock, fix) == "nothing yet"
    tokens = [
        {k.lower(): v for k, v in r.headers.items()}["authorization"] for r in vertex.requests
    ]
    assert tokens == ["Bearer revoked", f"Bearer {GOOD}"]


def test_a_denied_permission_pauses_the_thread_until_it_is_granted(
    store: MessageStore, vertex: FakeVertex, clock: Clock
) -> None:
    worker = engine(store, claude(vertex), "claude-sonnet-5-5", clock)
    vertex.error(403, "Permission 'aiplatform.endpoints.predict' denied on resource")
    vertex.reply(claude_reply({"type": "text", "text": "granted now"}))
    assert paused_then_resumed(store, worker, clock, lambda: None) == "granted now"


@pytest.mark.parametrize(
    "wrong",
    ["gemini-9-ultra", "gemini-3-pro-preview"],
    ids=["unknown model", "model shut down"],
)
def test_a_model_this_project_cannot_use_pauses_the_thread_until_the_model_is_fixed(
    store: MessageStore, vertex: FakeVertex, clock: Clock, wrong: str
) -> None:
    worker = engine(store, gemini(vertex), wrong, clock)
    vertex.reply(gemini_reply({"text": "right model"}, model_version="gemini-3.8-flash"))

    def fix() -> None:
        worker.config = replace(worker.config, model="gemini-3.8-flash")

    assert paused_then_resumed(store, worker, clock, fix) == "right model"
    paths = [r.path for r in vertex.requests]
    assert wrong in paths[0]
    assert "gemini-3.8-flash" in paths[-1]
