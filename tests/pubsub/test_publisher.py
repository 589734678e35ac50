from __future__ import annotations

import json
import uuid
from concurrent.futures import Future

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from tests.pubsub.emulator import Emulator

from messagedb_agent.notification import Notification
from messagedb_agent.pubsub.publisher import PublishError, PubSubPublisher, shared_client
from messagedb_agent.settings import Settings


def _stream() -> str:
    return f"thread-{uuid.uuid4()}"


def test_each_notification_is_a_json_message_without_an_ordering_key(
    pubsub_emulator: Emulator,
) -> None:
    topic = pubsub_emulator.topic()
    first, second = _stream(), _stream()
    sent = [
        Notification(stream_name=first, position=1),
        Notification(stream_name=second, position=0),
        Notification(stream_name=first, position=3),
    ]

    PubSubPublisher(pubsub_emulator.project, topic).publish(sent)

    received = pubsub_emulator.pull(topic, expected=3)
    decoded = sorted(
        (json.loads(m.data)["stream_name"], json.loads(m.data)["position"]) for m in received
    )
    assert decoded == sorted((n.stream_name, n.position) for n in sent)
    assert all(set(json.loads(m.data)) == {"stream_name", "position"} for m in received)
    # Steps need no order (a stale notification is acknowledged with nothing done), so no key:
    # a key would only let one failed publish block the thread's later ones.
    assert [m.ordering_key for m in received] == ["", "", ""]


def test_the_shared_client_does_not_order_messages(pubsub_emulator: Emulator) -> None:
    shared_client.cache_clear()
    try:
        client = shared_client(pubsub_emulator.host)
        assert client.publisher_options.enable_message_ordering is False
    finally:
        shared_client.cache_clear()


def test_a_publish_sends_no_ordering_key_to_the_client() -> None:
    class Recording:
        def __init__(self) -> None:
            self.calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

        def publish(self, *args: object, **kwargs: object) -> Future[str]:
            self.calls.append((args, kwargs))
            done: Future[str] = Future()
            done.set_result("id")
            return done

    client = Recording()
    PubSubPublisher("p", "t", client=client).publish(
        [Notification(stream_name=_stream(), position=0)]
    )
    [(args, kwargs)] = client.calls
    assert args[0] == "projects/p/topics/t"
    assert "ordering_key" not in kwargs


def test_the_current_trace_context_travels_as_the_traceparent_attribute(
    pubsub_emulator: Emulator,
) -> None:
    topic = pubsub_emulator.topic()
    context = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    publisher = PubSubPublisher(pubsub_emulator.project, topic)

    with trace.use_span(NonRecordingSpan(context)):
        publisher.publish([Notification(stream_name=_stream(), position=0)])
    publisher.publish([Notification(stream_name=_stream(), position=0)])

    received = pubsub_emulator.pull(topic, expected=2)
    traced = [dict(m.attributes) for m in received if "traceparent" in m.attributes]
    assert traced == [{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}]
    assert len(received) == 2


def test_an_unconfirmed_publish_raises_and_the_stream_can_be_published_again(
    pubsub_emulator: Emulator,
) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    publisher = PubSubPublisher(pubsub_emulator.project, missing, timeout=10)
    stream = _stream()

    with pytest.raises(PublishError, match=missing) as raised:
        publisher.publish([Notification(stream_name=stream, position=2)])
    assert f"{stream}@2" in str(raised.value)

    # Nothing sticks after a failure: the same stream's retry goes through.
    pubsub_emulator.publisher.create_topic(name=pubsub_emulator.topic_path(missing))
    pubsub_emulator.subscriber.create_subscription(
        request={
            "name": pubsub_emulator.subscription_path(missing),
            "topic": pubsub_emulator.topic_path(missing),
        }
    )
    publisher.publish([Notification(stream_name=stream, position=2)])
    received = pubsub_emulator.pull(missing, expected=1)
    assert [json.loads(m.data) for m in received] == [{"stream_name": stream, "position": 2}]


def test_publishing_nothing_sends_nothing(pubsub_emulator: Emulator) -> None:
    topic = pubsub_emulator.topic()
    PubSubPublisher(pubsub_emulator.project, topic).publish([])
    assert pubsub_emulator.pull(topic, expected=1, timeout=1) == []


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PUBSUB_PROJECT", "PUBSUB_TOPIC", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    published = PubSubPublisher.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert published.topic_path == "projects/local-project/topics/agent-steps"

    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "vertex-project")
    assert Settings(_env_file=None).pubsub_project == "vertex-project"  # type: ignore[call-arg]

    monkeypatch.setenv("PUBSUB_PROJECT", "pubsub-project")
    monkeypatch.setenv("PUBSUB_TOPIC", "steps")
    published = PubSubPublisher.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert published.topic_path == "projects/pubsub-project/topics/steps"
