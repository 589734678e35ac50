"""The live stream through the API: AG-UI events validated by the official package's own models,
exact resumption from every id, stream tokens for `EventSource`, the per-user limit, and the
model's text arriving word by word before its event, never twice."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from ag_ui.core import Event as AguiEvent
from flask.testing import FlaskClient
from pydantic import TypeAdapter
from tests.api.conftest import SECRET, MakeApi, bearer, start
from tests.api.test_user_stories import Stepping

from messagedb_agent.api.stream_tokens import TTL_SECONDS, issue, stream_key
from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore

AGUI = TypeAdapter(AguiEvent)


@dataclass(frozen=True)
class Sse:
    id: str | None
    data: dict[str, Any]


def parse(body: bytes) -> list[Sse]:
    """SSE messages as a browser reads them: comments dropped, `id:` optional."""
    messages: list[Sse] = []
    for block in body.decode().split("\n\n"):
        fields = [line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")]
        values = {name: value for name, value in fields}
        if "data" in values:
            messages.append(Sse(values.get("id"), orjson.loads(values["data"])))
    return messages


@pytest.fixture
def stepping(store: MessageStore, settings: Settings) -> Iterator[Stepping]:
    publisher = Stepping(build_engine(settings, store, OfflineModel(word_delay=0.02)))
    yield publisher
    publisher.join()


@pytest.fixture
def chat(make_api: MakeApi, stepping: Stepping) -> Iterator[FlaskClient]:
    # streams end right after their replay (the live part has its own test)
    api = make_api(stepping, stream_max_seconds=0.05, streams_per_user=2)
    with api.flask_app().test_client() as test_client:
        yield test_client


def finished_thread(chat: FlaskClient, auth: dict[str, str]) -> str:
    thread = start(chat, auth, None)
    answered = chat.post(
        f"/v1/threads/{thread}/messages?wait=20",
        json={"message": "add a task to buy milk"},
        headers=auth,
    )
    assert answered.status_code == 200, answered.get_json()
    return thread


def read(chat: FlaskClient, path: str, **headers: str) -> list[Sse]:
    response = chat.get(path, headers=headers)
    try:
        assert response.status_code == 200, response.get_data()
        assert response.mimetype == "text/event-stream"
        return parse(response.get_data())
    finally:
        response.close()  # as a server does when the body ends


def test_every_event_of_a_turn_is_an_ag_ui_event_the_package_accepts(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = finished_thread(chat, auth)
    messages = read(chat, f"/v1/threads/{thread}/stream", **auth)

    for message in messages:
        parsed = AGUI.validate_python(message.data)
        assert parsed.type.value == message.data["type"]
    types = [m.data["type"] for m in messages]
    assert types[0] == "RUN_STARTED"
    assert {"TOOL_CALL_START", "TOOL_CALL_RESULT", "TEXT_MESSAGE_CONTENT"} <= set(types)
    assert types[-2:] == ["STATE_SNAPSHOT", "RUN_FINISHED"]  # the state, then the run's end
    snapshot = messages[-2].data["snapshot"]
    assert snapshot["status"] == "active"
    assert all(m.id is not None for m in messages)  # nothing live: each has its cursor


def test_resuming_from_any_id_gives_exactly_the_rest(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = finished_thread(chat, auth)
    whole = [m for m in read(chat, f"/v1/threads/{thread}/stream", **auth) if m.id is not None]

    for index, message in enumerate(whole):
        assert message.id is not None
        rest = read(chat, f"/v1/threads/{thread}/stream", **auth, **{"Last-Event-ID": message.id})
        assert [m for m in rest if m.id is not None] == whole[index + 1 :]
        by_query = read(chat, f"/v1/threads/{thread}/stream?after={message.id}", **auth)
        assert [m for m in by_query if m.id is not None] == whole[index + 1 :]


def test_the_raw_format_sends_our_own_events_with_their_positions(
    chat: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    thread = finished_thread(chat, auth)
    raw = read(chat, f"/v1/threads/{thread}/stream?format=raw&after=0", **auth)

    events = chat.get(f"/v1/threads/{thread}/events", headers=auth).get_json()["events"]
    assert [(m.id, m.data["type"]) for m in raw] == [
        (str(e["position"]), e["type"]) for e in events[1:]
    ]


def test_a_stream_token_opens_the_stream_without_a_header_for_that_thread_only(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = finished_thread(chat, auth)
    other = start(chat, auth, None)
    issued = chat.post(f"/v1/threads/{thread}/stream-token", headers=auth)
    assert issued.status_code == 200
    token = issued.get_json()["token"]

    opened = read(chat, issued.get_json()["stream_url"])
    assert opened[0].data["type"] == "RUN_STARTED"
    assert chat.get(f"/v1/threads/{other}/stream?token={token}").status_code == 401
    bearer_token = auth["Authorization"].split()[1]
    refused = chat.get(f"/v1/threads/{thread}/stream?token={bearer_token}")
    assert refused.status_code == 401  # a bearer token is never accepted in a URL
    assert chat.get(f"/v1/threads/{thread}/stream").status_code == 401


def test_an_expired_stream_token_is_refused_with_a_clear_message(
    chat: FlaskClient, auth: dict[str, str], user: str, settings: Settings
) -> None:
    thread = start(chat, auth, None)
    key = stream_key(SECRET)  # the API's HS256 secret, which the tests' API is given
    token = issue(key, user, thread, now=time.time() - TTL_SECONDS - 30).token

    refused = chat.get(f"/v1/threads/{thread}/stream?token={token}")

    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "stream_token_expired"


def test_another_users_thread_is_not_found(chat: FlaskClient, auth: dict[str, str]) -> None:
    thread = start(chat, auth, None)
    stranger = bearer(f"stranger-{uuid.uuid4().hex[:8]}")
    assert chat.get(f"/v1/threads/{thread}/stream", headers=stranger).status_code == 404
    assert chat.post(f"/v1/threads/{thread}/stream-token", headers=stranger).status_code == 404


def test_a_cursor_this_stream_never_sent_is_a_clear_400(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = start(chat, auth, None)
    refused = chat.get(f"/v1/threads/{thread}/stream", headers={**auth, "Last-Event-ID": "x1"})
    assert refused.status_code == 400
    assert "resume" in refused.get_json()["error"]["message"]


def test_a_user_over_the_open_stream_limit_is_told_to_close_one(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = start(chat, auth, None)
    path = f"/v1/threads/{thread}/stream"
    held = [chat.get(path, headers=auth, buffered=False) for _ in range(2)]

    refused = chat.get(path, headers=auth)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_streams"

    held[0].close()
    again = chat.get(path, headers=auth, buffered=False)
    assert again.status_code == 200
    for response in (held[1], again):
        response.close()


def test_the_reply_arrives_word_by_word_then_its_event_adds_nothing_twice(
    make_api: MakeApi, stepping: Stepping, auth: dict[str, str]
) -> None:
    api = make_api(stepping, stream_max_seconds=8.0)
    with api.flask_app().test_client() as opener:
        thread = start(opener, auth, None)
    received: list[bytes] = []
    finished = threading.Event()

    def listen() -> None:
        with api.flask_app().test_client() as listener:
            response = listener.get(f"/v1/threads/{thread}/stream", headers=auth, buffered=False)
            for chunk in response.response:
                received.append(chunk)
                if b"RUN_FINISHED" in chunk:
                    finished.set()
                    break
            response.close()

    listening = threading.Thread(target=listen)
    listening.start()
    time.sleep(0.5)  # the stream is open and listening before the message is sent
    with api.flask_app().test_client() as sender:
        sent = sender.post(
            f"/v1/threads/{thread}/messages",
            json={"message": "Say something long enough to stream, please"},
            headers=auth,
        )
        assert sent.status_code == 202
    assert finished.wait(15), b"".join(received)[-2000:]
    listening.join(10)

    messages = parse(b"".join(received))
    assistant = {
        m.data["messageId"]
        for m in messages
        if m.data["type"] == "TEXT_MESSAGE_START" and m.data.get("role") == "assistant"
    }
    assert len(assistant) == 1
    [step] = assistant
    deltas = [
        m
        for m in messages
        if m.data["type"] == "TEXT_MESSAGE_CONTENT" and m.data["messageId"] == step
    ]
    live = [m for m in deltas if m.id is not None and "~" in m.id]
    assert len(live) > 2  # streamed before the event, word by word, each with its cursor
    streamed = "".join(m.data["delta"] for m in deltas)
    with api.flask_app().test_client() as reader:
        detail = reader.get(f"/v1/threads/{thread}", headers=auth).get_json()
    final = [m["text"] for m in detail["messages"] if m["role"] == "assistant"][-1]
    assert streamed == final  # the event added only what the deltas had not carried
    starts = [m for m in messages if m.data["type"] == "TEXT_MESSAGE_START"]
    assert len([m for m in starts if m.data["messageId"] == step]) == 1


def test_a_stream_token_signed_with_a_published_default_is_refused(
    chat: FlaskClient, auth: dict[str, str], user: str
) -> None:
    from messagedb_agent.settings.serving import DEV_AUTH_SECRET

    thread = start(chat, auth, None)
    for published in (DEV_AUTH_SECRET, "dev-only-callback-secret-change-me"):
        forged = issue(stream_key(published), user, thread).token
        assert chat.get(f"/v1/threads/{thread}/stream?token={forged}").status_code == 401


def test_without_a_secret_to_key_them_stream_tokens_are_unavailable_not_forgeable(
    make_api: MakeApi, auth: dict[str, str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    api = make_api(jwt_hs256_secret=None, jwt_public_key=pem.decode())
    import jwt

    token = jwt.encode({"sub": "rs-user", "exp": int(time.time()) + 60}, key, algorithm="RS256")
    with api.flask_app().test_client() as client:
        headers = {"Authorization": f"Bearer {token}"}
        thread = start(client, headers, None)
        refused = client.post(f"/v1/threads/{thread}/stream-token", headers=headers)
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "stream_tokens_unavailable"


def test_the_whole_stream_of_the_demo_conversation_is_what_ag_ui_clients_accept(
    make_api: MakeApi, store: MessageStore, settings: Settings, auth: dict[str, str]
) -> None:
    """The demo's turns (an approval among them, approved as the demo does) through the API;
    every event of the thread's stream validated by the package's models, in a sequence an
    AG-UI client's verifier accepts."""
    from tests.api.test_approvals import DEFAULT_APPROVAL
    from tests.projections.test_agui import verify_sequence

    from messagedb_agent.demo import DEMO_TURNS

    engine_settings = settings.replace(tools_requiring_approval=DEFAULT_APPROVAL)
    stepping = Stepping(build_engine(engine_settings, store, OfflineModel()))
    api = make_api(stepping, stream_max_seconds=0.05)
    with api.flask_app().test_client() as chat:
        thread = start(chat, auth, None)
        for turn in DEMO_TURNS:
            said = chat.post(
                f"/v1/threads/{thread}/messages?wait=20", json={"message": turn}, headers=auth
            )
            assert said.status_code in (200, 202), said.get_json()  # 202: it asks approval
            for pending in chat.get(f"/v1/threads/{thread}", headers=auth).get_json()[
                "pending_approvals"
            ]:
                path = f"/v1/threads/{thread}/approvals/{pending['tool_call_id']}"
                assert (
                    chat.post(path, json={"decision": "approve"}, headers=auth).status_code == 200
                )
            stepping.join()
        messages = read(chat, f"/v1/threads/{thread}/stream", **auth)
    stepping.join()

    events = [AGUI.validate_python(m.data) for m in messages]
    verify_sequence(events, thread)
    runs = [e for e in events if e.type.value == "RUN_FINISHED"]
    assert len(runs) >= len(DEMO_TURNS)
    assert any(r.outcome is not None and r.outcome.type == "interrupt" for r in runs)
