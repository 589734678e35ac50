"""Replies pushed to the callback URL: signed, retried with backoff, never resent once done."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.engine.doubles import Clock, EchoTools, ScriptedModel, calls, text
from tests.receiver import Receiver

from messagedb_agent.channels.callback import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    HttpReplySender,
    verify,
)
from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.notification import Notification
from messagedb_agent.store.client import MessageStore
from messagedb_agent.threads.commands import request_termination, start_thread
from messagedb_agent.threads.reading import read_thread

SECRET = "test-callback-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


@pytest.fixture
def delivering(store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock) -> Engine:
    return Engine(
        store,
        model,
        tools,
        EngineConfig(model="scripted"),
        clock=clock,
        worker="test",
        replies=HttpReplySender(SECRET, timeout=5, allow_private=True),  # a 127.0.0.1 receiver
    )


def thread_with_callback(store: MessageStore, url: str, message: str = "hello") -> Any:
    return start_thread(
        store, owner="alice", message=message, now=datetime.now(UTC), callback_url=url
    )


def test_a_finished_turn_is_posted_signed_to_the_callback_url(
    store: MessageStore, delivering: Engine, model: ScriptedModel, receiver: Receiver
) -> None:
    model.script = [calls(("add", {"a": 1, "b": 2})), text("three")]
    thread = thread_with_callback(store, receiver.url)
    run_until_idle(delivering, thread.notification, chain=50)
    [(headers, body)] = receiver.received
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify("another secret", body, headers[SIGNATURE_HEADER])
    assert not verify(SECRET, body + b" ", headers[SIGNATURE_HEADER])
    reply = json.loads(body)
    assert reply["reply"]["text"] == "three"
    assert reply["thread_id"] == thread.thread_id
    assert headers[DELIVERY_ID_HEADER] == reply["delivery_id"]
    types = [e.type for e in read_thread(store, thread.stream_name)]
    assert types[-2:] == ["ReplyDeliveryRequested", "ReplyDelivered"]


def test_a_receiver_that_fails_twice_gets_the_reply_on_the_third_attempt_and_only_then(
    store: MessageStore, delivering: Engine, model: ScriptedModel, receiver: Receiver, clock: Clock
) -> None:
    receiver.statuses = [503, 500]
    model.script = [text("eventually")]
    thread = thread_with_callback(store, receiver.url)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    run_until_idle(delivering, thread.notification, chain=50, sleep=sleep)
    assert len(receiver.received) == 3
    assert len({headers[DELIVERY_ID_HEADER] for headers, _ in receiver.received}) == 1
    assert [r["attempt"] for r in receiver.replies()] == [1, 2, 3]
    assert len(waits) == 2
    assert waits[1] > waits[0]  # exponential backoff between attempts
    events = read_thread(store, thread.stream_name)
    assert [e.type for e in events].count("ReplyDeliveryFailed") == 2
    assert events[-1].type == "ReplyDelivered"
    head = Notification(stream_name=thread.stream_name, position=events[-1].position)
    for _ in range(3):  # redeliveries of the last notification send nothing more
        delivering.advance(head, max_steps=50)
    assert len(receiver.received) == 3


def test_a_receiver_that_refuses_is_given_up_on_and_the_thread_goes_on(
    store: MessageStore, delivering: Engine, model: ScriptedModel, receiver: Receiver
) -> None:
    receiver.statuses = [410]
    model.script = [text("first"), text("second")]
    thread = thread_with_callback(store, receiver.url)
    run_until_idle(delivering, thread.notification, chain=50)
    events = read_thread(store, thread.stream_name)
    failure = next(e.event for e in events if e.type == "ReplyDeliveryFailed")
    assert failure.status_code == 410  # type: ignore[attr-defined]
    assert not failure.retryable  # type: ignore[attr-defined]
    assert len(receiver.received) == 1


def test_a_delivery_waiting_out_its_backoff_does_not_hold_up_the_next_turn(
    store: MessageStore, delivering: Engine, model: ScriptedModel, receiver: Receiver
) -> None:
    from messagedb_agent.threads.commands import add_message

    receiver.statuses = [503]
    model.script = [text("first"), text("second")]
    thread = thread_with_callback(store, receiver.url)
    result = delivering.advance(thread.notification, max_steps=50)
    assert result.not_before is not None  # the delivery waits for its backoff
    appended = add_message(
        store, thread.thread_id, owner="alice", message="more", now=datetime.now(UTC)
    )
    follow = delivering.advance(appended.notification, max_steps=50)
    assert follow.reply == "second"  # answered without waiting for the delivery


def test_the_closing_message_of_an_ended_thread_is_delivered(
    store: MessageStore, delivering: Engine, model: ScriptedModel, receiver: Receiver
) -> None:
    model.script = [text("hi")]
    thread = thread_with_callback(store, receiver.url)
    run_until_idle(delivering, thread.notification, chain=50)
    ended = request_termination(store, thread.thread_id, owner="alice")
    run_until_idle(delivering, ended.notification, chain=50)
    replies = receiver.replies()
    assert [r["reply"]["final"] for r in replies] == [False, True]
    assert read_thread(store, thread.stream_name)[-1].type == "ReplyDelivered"


def test_a_paused_thread_tells_the_callback_once_and_then_delivers_the_real_answer(
    store: MessageStore, delivering: Engine, model: ScriptedModel, receiver: Receiver, clock: Clock
) -> None:
    from messagedb_agent.engine.effects import UNAVAILABLE_NOTICE
    from messagedb_agent.llm.types import LLMError

    denied = LLMError("403 PERMISSION_DENIED", kind="auth", retryable=False, status=403)
    model.script = [denied, denied, text("back again")]
    thread = thread_with_callback(store, receiver.url)
    run_until_idle(delivering, thread.notification, chain=50, max_wait=0)
    for _ in range(2):  # the retries fall due: the first still fails, the second answers
        clock.advance(delivering.config.unavailable_retry.total_seconds())
        head = read_thread(store, thread.stream_name)[-1]
        notification = Notification(stream_name=thread.stream_name, position=head.position)
        run_until_idle(delivering, notification, chain=50, max_wait=0)
    texts = [json.loads(body)["reply"]["text"] for _, body in receiver.received]
    assert texts == [UNAVAILABLE_NOTICE, "back again"]


def test_a_call_waiting_for_approval_is_posted_signed_to_the_callback_url_once(
    store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock, receiver: Receiver
) -> None:
    from messagedb_agent.threads.approvals import decide_approval

    tools.functions["delete_task"] = lambda args, ctx: {"deleted": args["task_id"]}
    engine = Engine(
        store,
        model,
        tools,
        EngineConfig(model="scripted", tools_requiring_approval=("delete_task",)),
        clock=clock,
        worker="test",
        replies=HttpReplySender(SECRET, timeout=5, allow_private=True),
    )
    model.script = [
        calls(("delete_task", {"task_id": 2}), ("delete_task", {"task_id": 3})),
        text("both gone"),
    ]
    thread = thread_with_callback(store, receiver.url, "delete tasks 2 and 3")
    run_until_idle(engine, thread.notification, chain=50)
    [(headers, body)] = receiver.received
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    asked = json.loads(body)
    assert asked["type"] == "approval_requested"
    assert asked["thread_id"] == thread.thread_id
    assert [(a["tool_call_id"], a["tool"], a["arguments"]) for a in asked["approvals"]] == [
        ("c0", "delete_task", {"task_id": 2}),
        ("c1", "delete_task", {"task_id": 3}),
    ]
    for call_id in ("c0", "c1"):
        decided = decide_approval(store, thread.thread_id, call_id, owner="alice", approve=True)
    run_until_idle(engine, decided.notification, chain=50)
    assert [json.loads(b)["type"] for _, b in receiver.received] == [
        "approval_requested",
        "reply",
    ]
    assert json.loads(receiver.received[-1][1])["reply"]["text"] == "both gone"
