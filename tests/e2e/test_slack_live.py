"""Slack through the running stack: signed events to the ingest function over HTTP, served by
functions-framework; the step function, triggered through the Pub/Sub emulator, replies with
the official `slack_sdk` to the local Slack. Each request is acknowledged well inside Slack's
three seconds, a repeated delivery is answered once, and the reply lands in the thread."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from tests.channels.fake_slack import message_event, signed
from tests.e2e.conftest import KeepAliveRetry, Live

ACK_SECONDS = 3.0  # Slack's limit (https://docs.slack.dev/apis/events-api/)


def _post(http: httpx.Client, envelope: dict[str, Any], **headers: str) -> float:
    body = json.dumps(envelope).encode()
    started = time.perf_counter()
    answer = http.post(
        "/v1/channels/slack/events", content=body, headers={**signed(body), **headers}
    )
    took = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    return took


def test_a_slack_conversation_through_the_stack_is_acknowledged_at_once_and_answered_once(
    live: Live,
) -> None:
    user = f"U{time.time_ns() % 10**9:09d}"
    channel = "C0GENERAL1"
    mention = message_event(
        "add a task to buy milk", user=user, channel=channel, kind="app_mention"
    )
    with httpx.Client(base_url=live.ingest, timeout=30, transport=KeepAliveRetry()) as http:
        took = _post(http, mention)
        again = _post(
            http, mention, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        )
        root = mention["event"]["ts"]
        deadline = time.monotonic() + 60
        while not (mine := [p for p in live.slack.in_channel(channel) if p.thread_ts == root]):
            assert time.monotonic() < deadline, "no reply in the thread"
            time.sleep(0.1)
        followup = message_event(
            "list my tasks", user=user, channel=channel, channel_type="channel", thread_ts=root
        )
        _post(http, followup)
        while len(mine := [p for p in live.slack.in_channel(channel) if p.thread_ts == root]) < 2:
            assert time.monotonic() < deadline, "no second reply in the thread"
            time.sleep(0.1)
    assert took < ACK_SECONDS
    assert again < ACK_SECONDS
    assert "buy milk" in mine[0].shown
    assert "buy milk" in mine[1].shown  # the same conversation: the task is there
    time.sleep(1.0)  # a second reply to the repeated delivery would have come by now
    assert len([p for p in live.slack.in_channel(channel) if p.thread_ts == root]) == 2
