"""Live streams through the running stack, as a front-end reads them over HTTP: twenty users
at once, each dropping its connection in the middle of its turn (often in the middle of the
model's live text) and resuming with `Last-Event-ID`. What each one received, joined, is the
thread's stream read whole afterwards, exactly: every event in the same order, and each
message's text the same, nothing lost and nothing repeated. (Text may arrive in other pieces:
live, word by word, where the whole read gets it in one.)"""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import httpx
from tests.e2e.conftest import Live
from tests.e2e.conversation import Chat, ok, sse_messages

STREAMS = 20
REQUEST = "Add a task to buy milk and add a task to walk the dog, then list my tasks"


def _until_finished(
    http: httpx.Client, path: str, last_id: str | None, drop_after: int | None
) -> tuple[list[tuple[str, dict[str, Any]]], str | None, bool]:
    """Read until the run finishes, or until `drop_after` cursor-bearing messages arrived
    (then the connection is dropped). Returns what had a cursor, the last cursor, and
    whether the run finished."""
    got: list[tuple[str, dict[str, Any]]] = []
    for sse_id, data in sse_messages(http, path, last_id):
        if sse_id is None:
            continue  # heartbeats carry no cursor
        got.append((sse_id, data))
        last_id = sse_id
        if data["type"] == "RUN_FINISHED" and data.get("outcome", {}).get("type") == "success":
            return got, last_id, True
        if drop_after is not None and len(got) >= drop_after:
            return got, last_id, False  # leaving the `with` closes the connection
    return got, last_id, False


def _one_user(live: Live, n: int) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    http = live.client(f"streamer-{n}-{uuid.uuid4().hex[:6]}")
    with closing(http):
        chat = Chat(http)
        chat.start()
        path = f"/v1/threads/{chat.thread_id}/stream"
        chat.send(REQUEST)
        received: list[tuple[str, dict[str, Any]]] = []
        last: str | None = None
        reconnects = 0
        finished = False
        rng = random.Random(n)
        while not finished:
            drop = rng.randint(2, 6) if reconnects < 3 else None
            got, last, finished = _until_finished(http, path, last, drop)
            received += got
            reconnects += not finished
        whole, _, done = _until_finished(http, path, None, None)
        assert done
        assert _read(received) == _read(whole), f"user {n}: the resumed stream differs"
        return received, reconnects


def _read(messages: list[tuple[str, dict[str, Any]]]) -> tuple[list[Any], dict[str, str]]:
    """What a client makes of a stream: every other event in order, and each message's text,
    its pieces joined. A message streamed live may start before events recorded just ahead of
    it (a step may write a tool's result together with the model's answer), so messages are
    compared by their text, each started and ended exactly once."""
    events: list[Any] = []
    texts: dict[str, str] = {}
    bounds: list[tuple[str, str]] = []
    for _, data in messages:
        kind = data["type"]
        if kind == "TEXT_MESSAGE_CONTENT":
            texts[data["messageId"]] = texts.get(data["messageId"], "") + data["delta"]
        elif kind in ("TEXT_MESSAGE_START", "TEXT_MESSAGE_END"):
            bounds.append((kind, data["messageId"]))
        else:
            events.append({k: v for k, v in data.items() if k != "timestamp"})
    assert len(bounds) == len(set(bounds)), "a message started or ended twice"
    assert {m for _, m in bounds} == set(texts) | {
        m for k, m in bounds if k == "TEXT_MESSAGE_START"
    }
    return events, texts


def test_twenty_streams_dropped_mid_turn_resume_with_nothing_lost_or_repeated(
    live: Live,
) -> None:
    with ThreadPoolExecutor(STREAMS) as pool:
        results = list(pool.map(lambda n: _one_user(live, n), range(STREAMS)))

    assert all(reconnects >= 1 for _, reconnects in results)
    for received, _ in results:
        types = [data["type"] for _, data in received]
        assert types[0] == "RUN_STARTED"
        assert types.count("TOOL_CALL_START") >= 3
        assert types[-1] == "RUN_FINISHED"
        ids = [sse_id for sse_id, _ in received if "~" not in sse_id]
        assert len(ids) == len(set(ids))  # no recorded event twice
    live_text = [i for received, _ in results for i, _ in received if "~" in i]
    assert live_text  # some of the text arrived live, before its event
    with closing(live.client("streamer-check")) as http:
        ok(http.get("/healthz"))
