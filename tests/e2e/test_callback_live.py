"""A reply pushed to the front-end's callback URL through the running stack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from tests.e2e.conftest import CALLBACK_SECRET, Live
from tests.receiver import Receiver

from messagedb_agent.channels.callback import DELIVERY_ID_HEADER, SIGNATURE_HEADER, verify


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


def test_a_receiver_that_fails_twice_gets_the_signed_reply_on_the_third_attempt(
    live: Live, receiver: Receiver
) -> None:
    receiver.statuses = [503, 500]
    with live.client("callback-user") as http:
        created = http.post(
            "/v1/threads", json={"message": "what is 2+2", "callback_url": receiver.url}
        )
        assert created.status_code == 201
        thread_id = created.json()["thread_id"]
        deadline = time.monotonic() + 30
        while len(receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        events = http.get(f"/v1/threads/{thread_id}/events", params={"limit": 500}).json()
    assert len(receiver.received) == 3
    delivery_ids = {headers[DELIVERY_ID_HEADER] for headers, _ in receiver.received}
    assert len(delivery_ids) == 1  # one reply, three attempts
    for headers, body in receiver.received:
        assert verify(CALLBACK_SECRET, body, headers[SIGNATURE_HEADER])
    reply = json.loads(receiver.received[-1][1])
    assert reply["thread_id"] == thread_id
    assert "4" in reply["reply"]["text"]
    types = [e["type"] for e in events["events"]]
    assert types.count("ReplyDeliveryFailed") == 2
    assert types.count("ReplyDelivered") == 1
    time.sleep(2)
    assert len(receiver.received) == 3  # never resent once delivered
