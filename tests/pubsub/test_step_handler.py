from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, new_thread, step, text
from tests.publishers import RecordingPublisher
from tests.pubsub.emulator import Emulator

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.step import Engine, StepResult
from messagedb_agent.llm.types import LLMError
from messagedb_agent.notification import Notification
from messagedb_agent.projections.next_step import StepKind
from messagedb_agent.pubsub.envelope import MESSAGE_PUBLISHED, encode_push
from messagedb_agent.pubsub.publisher import PublishError, PubSubPublisher
from messagedb_agent.pubsub.step_handler import (
    Disposition,
    RedeliverLater,
    StepDelivery,
    disposition,
)
from messagedb_agent.stack.processes import free_port
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.errors import StoreUnavailableError
from messagedb_agent.threads.commands import request_termination


def _event(notification: Notification) -> CloudEvent:
    body = encode_push(notification, subscription="projects/p/subscriptions/s")
    return CloudEvent({"type": MESSAGE_PUBLISHED, "source": "//pubsub.googleapis.com/t"}, body)


def _types(store: MessageStore, stream: str) -> list[str]:
    return [m.type for m in store.get_stream_messages(stream)]


class Sleeper:
    """Sleeps on the test clock: the engine sees the time pass, the test does not wait."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def engine(store: MessageStore, model: ScriptedModel, clock: Clock) -> Engine:
    config = EngineConfig(model="scripted", backoff_base=timedelta(seconds=2))
    return Engine(store, model, EchoTools(), config, clock=clock, worker="test")


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def handler(engine: Engine, publisher: RecordingPublisher, clock: Clock) -> StepDelivery:
    return StepDelivery(engine, publisher, sleep=Sleeper(clock))


def test_a_delivery_runs_the_turn_to_its_end_and_has_nothing_left_to_publish(
    handler: StepDelivery, publisher: RecordingPublisher, store: MessageStore
) -> None:
    thread = new_thread(store, "hello")

    result = handler.handle_event(_event(thread.notification))

    assert result is not None
    assert result.outcome is StepKind.EXECUTED
    assert result.turn_completed
    assert _types(store, thread.stream_name)[-1] == "LLMResponseReceived"
    assert publisher.published == []


def test_an_executed_step_publishes_its_follow_up_and_acknowledges(
    engine: Engine, publisher: RecordingPublisher, store: MessageStore, clock: Any
) -> None:
    handler = StepDelivery(engine, publisher, sleep=Sleeper(clock), max_steps=1)
    thread = new_thread(store, "hello")

    result = handler.handle_event(_event(thread.notification))

    assert result is not None
    assert result.outcome is StepKind.EXECUTED
    assert _types(store, thread.stream_name)[-1] == "LLMResponseReceived"
    head = store.stream_version(thread.stream_name)
    assert head is not None
    assert publisher.published == [Notification(stream_name=thread.stream_name, position=head)]


@pytest.mark.parametrize(
    ("staging", "expected"),
    [("waiting", StepKind.WAITING), ("stale", StepKind.STALE), ("empty", StepKind.EMPTY)],
)
def test_final_outcomes_are_acknowledged_without_publishing(
    handler: StepDelivery,
    publisher: RecordingPublisher,
    store: MessageStore,
    staging: str,
    expected: StepKind,
) -> None:
    thread = new_thread(store, "hello")
    if staging == "empty":
        notification = Notification(stream_name=f"thread-{uuid.uuid4()}", position=0)
    else:
        handler.handle(thread.notification)
        publisher.published.clear()
        head = store.stream_version(thread.stream_name)
        assert head is not None
        position = head if staging == "waiting" else thread.position
        notification = Notification(stream_name=thread.stream_name, position=position)

    result = handler.handle_event(_event(notification))

    assert result is not None
    assert result.outcome is expected
    assert publisher.published == []


def test_an_ended_thread_is_acknowledged_as_done(
    handler: StepDelivery, publisher: RecordingPublisher, store: MessageStore
) -> None:
    thread = new_thread(store, "hello")
    ended = request_termination(store, thread.stream_name, owner="alice")
    assert handler.handle(ended.notification).outcome is StepKind.EXECUTED  # writes completion
    head = store.stream_version(thread.stream_name)
    assert head is not None

    result = handler.handle(Notification(stream_name=thread.stream_name, position=head))

    assert result.outcome is StepKind.DONE
    assert _types(store, thread.stream_name)[-1] == "SessionCompleted"


def test_a_step_in_flight_elsewhere_is_acknowledged(
    handler: StepDelivery,
    engine: Engine,
    model: ScriptedModel,
    publisher: RecordingPublisher,
    store: MessageStore,
) -> None:
    thread = new_thread(store, "hello")
    model.gate = threading.Event()
    other = threading.Thread(target=step, args=(engine, thread.notification))
    other.start()
    try:
        assert model.entered.wait(10)  # the other worker has claimed and is calling the model
        head = store.stream_version(thread.stream_name)
        assert head is not None

        result = handler.handle(Notification(stream_name=thread.stream_name, position=head))

        assert result.outcome is StepKind.IN_FLIGHT
        assert publisher.published == []
    finally:
        model.gate.set()
        other.join(10)
    assert model.calls == 1


def test_a_short_backoff_is_slept_through_and_the_step_runs_again(
    handler: StepDelivery,
    model: ScriptedModel,
    publisher: RecordingPublisher,
    store: MessageStore,
) -> None:
    model.script = [LLMError("overloaded", kind="rate_limit", retryable=True), text("done")]
    thread = new_thread(store, "hello")
    failed = handler.handle(thread.notification)  # appends LLMCallFailed with retry_at
    assert failed.outcome is StepKind.EXECUTED

    result = handler.handle(publisher.published[-1])

    assert result.outcome is StepKind.EXECUTED
    assert result.reply == "done"
    assert handler.sleep.slept == [2.0]  # type: ignore[attr-defined]
    assert model.calls == 2


def test_a_long_backoff_is_handed_back_to_pubsub_for_redelivery(
    store: MessageStore, model: ScriptedModel, clock: Clock, publisher: RecordingPublisher
) -> None:
    config = EngineConfig(model="scripted", backoff_base=timedelta(seconds=20))
    engine = Engine(store, model, EchoTools(), config, clock=clock, worker="test")
    handler = StepDelivery(engine, publisher, sleep=Sleeper(clock))
    model.script = [LLMError("overloaded", kind="rate_limit", retryable=True)]
    thread = new_thread(store, "hello")
    handler.handle(thread.notification)

    with pytest.raises(RedeliverLater) as raised:
        handler.handle_event(_event(publisher.published[-1]))

    assert raised.value.not_before == clock.now + timedelta(seconds=20)
    assert handler.sleep.slept == []  # type: ignore[attr-defined]
    assert model.calls == 1


def test_a_malformed_delivery_is_logged_and_acknowledged(
    handler: StepDelivery, publisher: RecordingPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    event = CloudEvent(
        {"type": MESSAGE_PUBLISHED, "source": "//pubsub.googleapis.com/t"},
        {"message": {"data": "bm90IGpzb24=", "messageId": "1"}},  # "not json"
    )

    with caplog.at_level(logging.WARNING):
        assert handler.handle_event(event) is None

    assert "malformed step notification" in caplog.text
    assert publisher.published == []


def test_an_error_retrying_cannot_fix_is_logged_and_acknowledged(
    handler: StepDelivery,
    model: ScriptedModel,
    store: MessageStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(messages: list[Any]) -> Any:
        raise RuntimeError("a bug in the model adapter")

    model.script = [broken]
    thread = new_thread(store, "hello")

    with caplog.at_level(logging.ERROR):
        assert handler.handle_event(_event(thread.notification)) is None

    assert "a bug in the model adapter" in caplog.text


def test_an_unreachable_database_asks_for_redelivery(
    model: ScriptedModel, publisher: RecordingPublisher
) -> None:
    down = MessageStore(f"postgresql://postgres@127.0.0.1:{free_port()}/x", min_size=0, timeout=1)
    with down.open():
        handler = StepDelivery(Engine(down, model, EchoTools()), publisher)
        notification = Notification(stream_name=f"thread-{uuid.uuid4()}", position=0)
        with pytest.raises(StoreUnavailableError):
            handler.handle_event(_event(notification))


def test_an_unconfirmed_follow_up_asks_for_redelivery(
    engine: Engine, store: MessageStore, pubsub_emulator: Emulator
) -> None:
    missing_topic = PubSubPublisher(pubsub_emulator.project, f"missing-{uuid.uuid4().hex[:8]}")
    handler = StepDelivery(engine, missing_topic, max_steps=1)
    thread = new_thread(store, "hello")

    with pytest.raises(PublishError):
        handler.handle_event(_event(thread.notification))

    # The step's result is stored; the redelivery finds it done and acknowledges.
    assert _types(store, thread.stream_name)[-1] == "LLMResponseReceived"
    assert step(handler.engine, thread.notification).outcome is StepKind.STALE


NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("outcome", [o for o in StepKind if o is not StepKind.RETRY_LATER])
def test_every_outcome_but_retry_later_is_acknowledged(outcome: StepKind) -> None:
    result = StepResult(outcome, "thread-x", not_before=NOW + timedelta(seconds=30))
    assert disposition(result, NOW) == (Disposition.ACK, 0.0)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, Disposition.STEP_AGAIN),
        (-3, Disposition.STEP_AGAIN),
        (4, Disposition.STEP_AGAIN),
        (6, Disposition.REDELIVER),
    ],
)
def test_retry_later_waits_here_only_for_a_short_backoff(
    seconds: float, expected: Disposition
) -> None:
    result = StepResult(
        StepKind.RETRY_LATER, "thread-x", not_before=NOW + timedelta(seconds=seconds)
    )
    action, delay = disposition(result, NOW, max_inline_wait=5)
    assert action is expected
    assert delay == max(0, seconds)
