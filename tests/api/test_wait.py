"""`?wait=` answers with the assistant's reply, produced here by the real engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, start
from tests.engine.doubles import EchoTools, ScriptedModel, calls, text
from tests.publishers import NullPublisher

from messagedb_agent.api.replies import wait_for_reply
from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.notification import Notification
from messagedb_agent.postgres.agent_schema import THREAD_EVENTS_CHANNEL
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.signals import StreamSignals
from messagedb_agent.threads.commands import start_thread


class SteppingPublisher:
    """Plays Pub/Sub plus the step function: each notification runs the engine on a thread."""

    def __init__(self, engine: Engine, delay: float = 0.0) -> None:
        self.engine = engine
        self.delay = delay
        self.workers: list[threading.Thread] = []

    def publish(self, notifications: Sequence[Notification]) -> None:
        for notification in notifications:
            worker = threading.Thread(target=self._run, args=(notification,), daemon=True)
            worker.start()
            self.workers.append(worker)

    def _run(self, notification: Notification) -> None:
        time.sleep(self.delay)
        run_until_idle(self.engine, notification, max_wait=5)

    def join(self) -> None:
        for worker in self.workers:
            worker.join(10)


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def stepping(store: MessageStore, model: ScriptedModel) -> Iterator[SteppingPublisher]:
    tools = EchoTools({"add": lambda args, ctx: {"sum": args["a"] + args["b"]}})
    publisher = SteppingPublisher(Engine(store, model, tools, EngineConfig(model="scripted")), 0.1)
    yield publisher
    publisher.join()


@pytest.fixture
def engine_client(make_api: MakeApi, stepping: SteppingPublisher) -> Iterator[FlaskClient]:
    with make_api(stepping).flask_app().test_client() as test_client:
        yield test_client


def test_wait_returns_the_reply_to_this_message(
    engine_client: FlaskClient, auth: dict[str, str], stepping: SteppingPublisher
) -> None:
    thread_id = start(engine_client, auth, "hi")
    stepping.join()  # the first turn is answered before the message under test

    response = engine_client.post(
        f"/v1/threads/{thread_id}/messages?wait=10", json={"message": "ping"}, headers=auth
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["reply"]["text"] == "you said: ping"
    assert body["reply"]["position"] > body["position"]


def test_a_new_thread_with_wait_answers_with_the_reply_to_its_first_message(
    engine_client: FlaskClient, auth: dict[str, str]
) -> None:
    response = engine_client.post("/v1/threads?wait=10", json={"message": "ping"}, headers=auth)

    assert response.status_code == 201
    body = response.get_json()
    assert body["reply"]["text"] == "you said: ping"
    assert body["reply"]["position"] > body["position"]


def test_a_new_thread_without_wait_or_without_a_message_has_no_reply(
    engine_client: FlaskClient, auth: dict[str, str]
) -> None:
    quick = engine_client.post("/v1/threads", json={"message": "ping"}, headers=auth)
    empty = engine_client.post("/v1/threads?wait=1", json={}, headers=auth)

    assert (quick.status_code, quick.get_json()["reply"]) == (201, None)
    assert (empty.status_code, empty.get_json()["reply"]) == (201, None)


def test_wait_skips_tool_calls_and_returns_the_final_answer(
    engine_client: FlaskClient,
    auth: dict[str, str],
    model: ScriptedModel,
    stepping: SteppingPublisher,
) -> None:
    thread_id = start(engine_client, auth, None)
    model.script.extend([calls(("add", {"a": 2, "b": 3})), text("2 + 3 = 5")])

    response = engine_client.post(
        f"/v1/threads/{thread_id}/messages?wait=10", json={"message": "2+3?"}, headers=auth
    )
    stepping.join()
    detail = engine_client.get(f"/v1/threads/{thread_id}", headers=auth).get_json()

    assert response.status_code == 200
    assert response.get_json()["reply"]["text"] == "2 + 3 = 5"
    [call] = detail["tool_calls"]
    assert (call["name"], call["arguments"], call["status"]) == (
        "add",
        {"a": 2, "b": 3},
        "completed",
    )
    assert call["result"] == {"sum": 5}
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    assert detail["counts"]["tool_calls"] == 1
    assert detail["counts"]["llm_calls"] == 2


def test_wait_ignores_a_reply_to_an_older_message_that_lands_after_this_one(
    engine_client: FlaskClient,
    auth: dict[str, str],
    model: ScriptedModel,
    stepping: SteppingPublisher,
) -> None:
    model.gate = threading.Event()
    thread_id = start(engine_client, auth, "first")
    assert model.entered.wait(5)  # the call answering "first" is in flight
    threading.Timer(0.3, model.gate.set).start()

    response = engine_client.post(
        f"/v1/threads/{thread_id}/messages?wait=10", json={"message": "second"}, headers=auth
    )
    stepping.join()
    transcript = engine_client.get(f"/v1/threads/{thread_id}", headers=auth).get_json()

    assert response.status_code == 200
    assert response.get_json()["reply"]["text"] == "you said: second"
    assert [m["text"] for m in transcript["messages"]] == [
        "first",
        "second",
        "you said: first",
        "you said: second",
    ]


def test_wait_answers_202_when_no_reply_comes_in_time(
    make_api: MakeApi, auth: dict[str, str]
) -> None:
    client = make_api(NullPublisher()).flask_app().test_client()
    thread_id = start(client, auth, None)

    began = time.monotonic()
    response = client.post(
        f"/v1/threads/{thread_id}/messages?wait=0.3", json={"message": "anyone?"}, headers=auth
    )
    elapsed = time.monotonic() - began

    assert response.status_code == 202
    assert response.get_json() == {"thread_id": thread_id, "position": 1}
    assert 0.3 <= elapsed < 2


def test_wait_longer_than_the_configured_limit_is_refused(
    make_api: MakeApi, auth: dict[str, str]
) -> None:
    client = make_api(max_wait_seconds=2).flask_app().test_client()
    thread_id = start(client, auth)

    response = client.post(
        f"/v1/threads/{thread_id}/messages?wait=3", json={"message": "x"}, headers=auth
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert response.get_json()["error"]["details"][0]["field"] == "wait"


class CountingReads:
    """The store, counting how often a waiter reads the thread."""

    def __init__(self, store: MessageStore) -> None:
        self.store = store
        self.reads = 0

    def get_stream_messages(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return self.store.get_stream_messages(*args, **kwargs)


@pytest.mark.parametrize("listening", [True, False])
def test_a_waiter_reads_the_thread_when_the_reply_lands_not_ten_times_a_second(
    store: MessageStore, listening: bool
) -> None:
    engine = Engine(store, ScriptedModel(), EchoTools({}), EngineConfig(model="scripted"))
    thread = start_thread(store, owner="waiter", message="ping", now=datetime.now(UTC))
    answering = threading.Timer(1.2, run_until_idle, (engine, thread.notification))
    signals = StreamSignals(store.dedicated_connection, THREAD_EVENTS_CHANNEL).start()
    counting = CountingReads(store)
    try:
        answering.start()
        reply = wait_for_reply(
            cast(MessageStore, counting),
            thread.stream_name,
            thread.position,
            10,
            signals=signals if listening else None,
        )
    finally:
        answering.join()
        signals.close()

    assert reply is not None
    assert reply.text == "you said: ping"
    if listening:
        assert counting.reads <= 4  # the first read, a fallback read or two, the reply
    else:
        assert counting.reads >= 10  # polling: the cost the signals take away
