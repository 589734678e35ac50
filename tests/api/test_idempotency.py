"""`Idempotency-Key`: a retried POST gets the first answer and writes nothing new."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, bearer, event_types, start
from tests.api.test_wait import SteppingPublisher
from tests.engine.doubles import EchoTools, ScriptedModel

from messagedb_agent.api import IngestApi
from messagedb_agent.api.idempotency import (
    PURGE_EVERY,
    AnswerTable,
    ApiResponseRecorded,
    answer_key,
    fingerprint,
    record_stream,
)
from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.step import Engine
from messagedb_agent.events import Metadata, to_message
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream


def keyed(auth: dict[str, str], key: str | None = None) -> dict[str, str]:
    return {**auth, "Idempotency-Key": key or str(uuid.uuid4())}


def test_a_retried_message_returns_the_first_answer_and_is_written_once(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    thread_id = start(client, auth)
    headers = keyed(auth)
    path = f"/v1/threads/{thread_id}/messages"

    first = client.post(path, json={"message": "once"}, headers=headers)
    retry = client.post(path, json={"message": "once"}, headers=headers)

    assert first.status_code == retry.status_code == 202
    assert retry.get_json() == first.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert event_types(store, thread_id).count("UserMessageAdded") == 2  # "hello" and "once"


def test_a_retried_start_returns_the_same_thread(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, user: str
) -> None:
    headers = keyed(auth)

    first = client.post("/v1/threads", json={"message": "hi"}, headers=headers)
    retry = client.post("/v1/threads", json={"message": "hi"}, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.get_json() == first.get_json()
    listed = client.get("/v1/threads", headers=auth).get_json()["threads"]
    assert [t["thread_id"] for t in listed] == [first.get_json()["thread_id"]]


def test_json_spacing_and_key_order_do_not_make_a_different_request(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    headers = {**keyed(auth), "Content-Type": "application/json"}

    first = client.post("/v1/threads", data='{"message":"x","title":"t"}', headers=headers)
    retry = client.post("/v1/threads", data='{ "title": "t",  "message": "x" }', headers=headers)

    assert retry.get_json() == first.get_json()


def test_reusing_a_key_for_a_different_request_is_refused(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    thread_id = start(client, auth)
    headers = keyed(auth)
    path = f"/v1/threads/{thread_id}/messages"
    client.post(path, json={"message": "first"}, headers=headers)

    other_body = client.post(path, json={"message": "second"}, headers=headers)
    other_route = client.post("/v1/threads", json={"message": "first"}, headers=headers)

    for response in (other_body, other_route):
        assert response.status_code == 422
        assert response.get_json()["error"]["code"] == "idempotency_key_reused"
    assert "second" not in [
        m.data.get("message") for m in store.read_stream(thread_stream(thread_id))
    ]


def test_keys_are_per_user(client: FlaskClient, auth: dict[str, str]) -> None:
    key = str(uuid.uuid4())
    other = bearer(f"other-{uuid.uuid4().hex[:8]}")

    mine = client.post("/v1/threads", json={"message": "a"}, headers=keyed(auth, key))
    theirs = client.post("/v1/threads", json={"message": "b"}, headers=keyed(other, key))

    assert theirs.status_code == 201
    assert theirs.get_json()["thread_id"] != mine.get_json()["thread_id"]


def test_the_first_answer_is_a_row_that_expires_not_an_event(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, user: str
) -> None:
    key = str(uuid.uuid4())
    response = client.post("/v1/threads", headers=keyed(auth, key))

    with store.connection() as conn:
        row = conn.execute(
            "SELECT status, body, expires_at - created_at FROM agent.idempotent_responses"
            " WHERE key = %s",
            (answer_key(user, key),),
        ).fetchone()
    assert row == (201, response.get_json(), timedelta(hours=24))
    assert store.read_stream(record_stream(user, key)) == []  # no `apiResponse-` stream


def test_concurrent_duplicates_get_one_answer_and_one_write(
    make_api: MakeApi, auth: dict[str, str], store: MessageStore
) -> None:
    api = make_api()
    setup = api.flask_app().test_client()
    thread_id = start(setup, auth)
    headers = keyed(auth)

    def send(_: int) -> tuple[int, object]:
        with api.flask_app().test_client() as client:
            response = client.post(
                f"/v1/threads/{thread_id}/messages", json={"message": "race"}, headers=headers
            )
            return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(send, range(4)))

    assert all(answer == answers[0] for answer in answers)
    assert answers[0][0] == 202
    assert event_types(store, thread_id).count("UserMessageAdded") == 2


def test_an_invalid_key_is_refused(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/threads", headers={**auth, "Idempotency-Key": "x" * 300})

    assert response.status_code == 400
    assert response.get_json()["error"]["details"][0]["field"] == "Idempotency-Key"


def test_a_refused_request_is_not_recorded(client: FlaskClient, auth: dict[str, str]) -> None:
    headers = keyed(auth)

    refused = client.post("/v1/threads", json={"message": " "}, headers=headers)
    fixed = client.post("/v1/threads", json={"message": " "}, headers=headers)

    assert refused.status_code == fixed.status_code == 422
    assert "Idempotent-Replayed" not in fixed.headers


def test_concurrent_starts_with_one_key_all_get_the_first_answer(
    make_api: MakeApi, auth: dict[str, str], store: MessageStore
) -> None:
    """Ten instances at once: one writes the thread, the nine others answer as a retry would."""
    racers = 10
    apis = [make_api() for _ in range(racers)]  # one per instance, sharing the database
    for _ in range(3):
        headers = keyed(auth)
        barrier = threading.Barrier(racers)

        def send(
            index: int, headers: dict[str, str] = headers, barrier: threading.Barrier = barrier
        ) -> tuple[int, object, bool]:
            with apis[index].flask_app().test_client() as client:
                barrier.wait()
                response = client.post("/v1/threads", json={"message": "race"}, headers=headers)
                replayed = response.headers.get("Idempotent-Replayed") == "true"
                return response.status_code, response.get_json(), replayed

        with ThreadPoolExecutor(max_workers=racers) as pool:
            answers = list(pool.map(send, range(racers)))
        first = apis[0].flask_app().test_client()
        retry = first.post("/v1/threads", json={"message": "race"}, headers=headers)

        assert [status for status, _, _ in answers] == [201] * racers, answers
        assert all(body == retry.get_json() for _, body, _ in answers), answers
        assert sorted(replayed for _, _, replayed in answers) == [False] + [True] * (racers - 1)
        assert retry.status_code == 201
        thread_id = retry.get_json()["thread_id"]
        assert event_types(store, thread_id) == ["SessionStarted", "UserMessageAdded"]
        listed = first.get("/v1/threads", headers=auth).get_json()
        assert [t["thread_id"] for t in listed["threads"]].count(thread_id) == 1
        assert [t["title"] for t in listed["threads"] if t["thread_id"] == thread_id] == ["race"]


def test_a_key_is_scoped_to_its_user_whatever_either_holds(
    client: FlaskClient, store: MessageStore
) -> None:
    """`p/q` with key `r` and `p` with key `q/r` are two users' requests: two threads."""
    p = f"p-{uuid.uuid4().hex[:8]}"
    slashed_user, plain_user = bearer(f"{p}/q"), bearer(p)

    first = client.post("/v1/threads", json={"message": "a"}, headers=keyed(slashed_user, "r"))
    second = client.post("/v1/threads", json={"message": "b"}, headers=keyed(plain_user, "q/r"))

    assert first.status_code == second.status_code == 201, second.get_json()
    assert first.get_json()["thread_id"] != second.get_json()["thread_id"]
    mine = client.get(f"/v1/threads/{second.get_json()['thread_id']}", headers=plain_user)
    assert [m["text"] for m in mine.get_json()["messages"]] == ["b"]


# -- the answer is recorded in the write's own transaction -----------------------------------


class Crash(Exception):
    pass


def test_a_crash_before_the_answer_is_recorded_leaves_the_message_unwritten(
    make_api: MakeApi,
    auth: dict[str, str],
    store: MessageStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = make_api().flask_app().test_client()
    thread_id = start(client, auth)
    headers = keyed(auth)
    path = f"/v1/threads/{thread_id}/messages"
    with monkeypatch.context() as crashing:
        crashing.setattr(AnswerTable, "record", _crash)
        failed = client.post(path, json={"message": "once"}, headers=headers)

    assert failed.status_code == 500
    assert event_types(store, thread_id) == ["SessionStarted", "UserMessageAdded"]  # "hello"
    retry = client.post(path, json={"message": "once"}, headers=headers)
    again = client.post(path, json={"message": "once"}, headers=headers)
    assert retry.status_code == again.status_code == 202
    assert "Idempotent-Replayed" not in retry.headers  # the retry is the first write
    assert again.get_json() == retry.get_json()
    assert event_types(store, thread_id).count("UserMessageAdded") == 2


def test_a_crash_before_the_answer_is_recorded_leaves_no_thread(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = keyed(auth)
    with monkeypatch.context() as crashing:
        crashing.setattr(AnswerTable, "record", _crash)
        failed = client.post("/v1/threads", json={"message": "hi"}, headers=headers)

    assert failed.status_code == 500
    assert client.get("/v1/threads", headers=auth).get_json()["threads"] == []  # no index entry
    retry = client.post("/v1/threads", json={"message": "hi"}, headers=headers)
    assert retry.status_code == 201
    thread_id = retry.get_json()["thread_id"]
    assert event_types(store, thread_id) == ["SessionStarted", "UserMessageAdded"]


def _crash(*args: object, **kwargs: object) -> bool:
    raise Crash


def test_one_key_on_two_threads_writes_only_the_first(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    """The two writes do not collide in Message DB (each thread has its own message ids); the
    second meets the first's answer in the table and its transaction, message included, rolls back."""
    first_thread, second_thread = start(client, auth), start(client, auth)
    headers = keyed(auth)

    first = client.post(
        f"/v1/threads/{first_thread}/messages", json={"message": "m"}, headers=headers
    )
    second = client.post(
        f"/v1/threads/{second_thread}/messages", json={"message": "m"}, headers=headers
    )

    assert first.status_code == 202
    assert second.status_code == 422
    assert second.get_json()["error"]["code"] == "idempotency_key_reused"
    assert event_types(store, second_thread) == ["SessionStarted", "UserMessageAdded"]


def test_concurrent_ends_with_one_key_write_one_termination(
    make_api: MakeApi, auth: dict[str, str], store: MessageStore
) -> None:
    api = make_api()
    thread_id = start(api.flask_app().test_client(), auth)
    headers = keyed(auth)
    racers = 6
    barrier = threading.Barrier(racers)

    def send(_: int) -> tuple[int, object]:
        with api.flask_app().test_client() as client:
            barrier.wait()
            response = client.post(f"/v1/threads/{thread_id}/end", headers=headers)
            return response.status_code, response.get_json()

    with ThreadPoolExecutor(max_workers=racers) as pool:
        answers = list(pool.map(send, range(racers)))

    assert all(answer == answers[0] for answer in answers), answers
    assert answers[0][0] == 202
    assert event_types(store, thread_id).count("SessionTerminationRequested") == 1


# -- expiry ----------------------------------------------------------------------------------


def _expire(store: MessageStore, user: str, key: str) -> None:
    with store.connection() as conn:
        conn.execute(
            "UPDATE agent.idempotent_responses SET expires_at = now() - interval '1 second'"
            " WHERE key = %s",
            (answer_key(user, key),),
        )


def test_an_answer_is_replayed_until_its_time_to_live_runs_out(
    make_api: MakeApi, auth: dict[str, str], store: MessageStore
) -> None:
    client = make_api(idempotency_ttl_seconds=1).flask_app().test_client()
    thread_id = start(client, auth)
    headers = keyed(auth)
    path = f"/v1/threads/{thread_id}/messages"
    first = client.post(path, json={"message": "once"}, headers=headers)
    replayed = client.post(path, json={"message": "once"}, headers=headers)
    time.sleep(1.2)

    late = client.post(path, json={"message": "once"}, headers=headers)

    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert late.status_code == 202
    assert "Idempotent-Replayed" not in late.headers  # a new key: answered from the log
    assert late.get_json() == first.get_json()  # whose message ids still find the first write
    assert event_types(store, thread_id).count("UserMessageAdded") == 2


def test_an_expired_key_may_be_used_for_a_new_request(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, user: str
) -> None:
    key = str(uuid.uuid4())
    started = client.post("/v1/threads", json={"message": "a"}, headers=keyed(auth, key))
    thread_id = started.get_json()["thread_id"]
    _expire(store, user, key)

    reused = client.post(
        f"/v1/threads/{thread_id}/messages", json={"message": "b"}, headers=keyed(auth, key)
    )

    assert reused.status_code == 202, reused.get_json()
    assert event_types(store, thread_id).count("UserMessageAdded") == 2
    replayed = client.post(
        f"/v1/threads/{thread_id}/messages", json={"message": "b"}, headers=keyed(auth, key)
    )
    assert replayed.headers["Idempotent-Replayed"] == "true"


def test_expired_answers_are_deleted_a_bounded_number_at_a_time(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, user: str, api: IngestApi
) -> None:
    keys = [str(uuid.uuid4()) for _ in range(3)]
    for key in keys:
        client.post("/v1/threads", headers=keyed(auth, key))
    for key in keys[:2]:
        _expire(store, user, key)

    def left() -> list[str]:
        digests = [answer_key(user, key) for key in keys]
        with store.connection() as conn:
            rows = conn.execute(
                "SELECT key FROM agent.idempotent_responses WHERE key = ANY(%s)", (digests,)
            ).fetchall()
        return sorted(row[0] for row in rows)

    answers = api.answers()
    while answers.purge(limit=1):  # other tests' expired rows may go too; one at a time
        pass

    assert left() == [answer_key(user, keys[2])]


def test_every_so_many_answers_a_process_deletes_expired_ones(
    make_api: MakeApi, auth: dict[str, str], store: MessageStore, user: str
) -> None:
    api = make_api()
    client = api.flask_app().test_client()
    old = str(uuid.uuid4())
    client.post("/v1/threads", headers=keyed(auth, old))
    _expire(store, user, old)

    for _ in range(PURGE_EVERY):
        client.post("/v1/threads", headers=keyed(auth))

    with store.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM agent.idempotent_responses WHERE key = %s",
            (answer_key(user, old),),
        ).fetchone()
    assert row == (0,)


# -- answers recorded as events by the previous release --------------------------------------


def _record_as_before(
    store: MessageStore, user: str, key: str, signature: str, status: int, body: dict[str, Any]
) -> None:
    """What the previous release wrote: the answer as the first event of its own stream."""
    message = to_message(
        ApiResponseRecorded(request_fingerprint=signature, status=status, body=body),
        Metadata(user_id=user),
    )
    store.write_message(
        None, record_stream(user, key), message.type, message.data, message.metadata, -1
    )


def test_an_answer_recorded_as_an_event_before_is_still_replayed(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, user: str
) -> None:
    thread_id = start(client, auth)
    key = str(uuid.uuid4())
    path = f"/v1/threads/{thread_id}/messages"
    body = {"thread_id": thread_id, "position": 1}
    _record_as_before(store, user, key, fingerprint("POST", path, {"message": "hello"}), 202, body)

    retry = client.post(path, json={"message": "hello"}, headers=keyed(auth, key))
    other = client.post(path, json={"message": "other"}, headers=keyed(auth, key))

    assert retry.status_code == 202
    assert retry.get_json() == body
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422
    assert event_types(store, thread_id).count("UserMessageAdded") == 1


def test_an_answer_recorded_as_an_event_expires_like_a_row(
    make_api: MakeApi, auth: dict[str, str], store: MessageStore, user: str
) -> None:
    client = make_api(idempotency_ttl_seconds=1).flask_app().test_client()
    key = str(uuid.uuid4())
    _record_as_before(
        store, user, key, fingerprint("POST", "/v1/threads", None), 201, {"thread_id": "gone"}
    )
    time.sleep(1.2)

    response = client.post("/v1/threads", headers=keyed(auth, key))

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert response.get_json()["thread_id"] != "gone"


def test_keyed_writes_add_nothing_to_the_answer_category(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, user: str
) -> None:
    keys = [str(uuid.uuid4()) for _ in range(3)]
    thread_id = client.post("/v1/threads", headers=keyed(auth, keys[0])).get_json()["thread_id"]
    client.post(
        f"/v1/threads/{thread_id}/messages", json={"message": "m"}, headers=keyed(auth, keys[1])
    )
    client.post(f"/v1/threads/{thread_id}/end", headers=keyed(auth, keys[2]))

    for key in keys:
        assert store.stream_version(record_stream(user, key)) is None


# -- `?wait=`: the reply is read from the log, after the write, for a replay too -------------


@pytest.fixture
def stepping(store: MessageStore) -> Iterator[SteppingPublisher]:
    tools = EchoTools({})
    publisher = SteppingPublisher(
        Engine(store, ScriptedModel(), tools, EngineConfig(model="scripted")), 0.1
    )
    yield publisher
    publisher.join()


def test_a_replay_that_asks_to_wait_gets_the_reply_too(
    make_api: MakeApi,
    auth: dict[str, str],
    store: MessageStore,
    user: str,
    stepping: SteppingPublisher,
) -> None:
    client = make_api(stepping).flask_app().test_client()
    thread_id = start(client, auth, "hi")
    stepping.join()
    key = str(uuid.uuid4())
    path = f"/v1/threads/{thread_id}/messages"

    first = client.post(f"{path}?wait=10", json={"message": "ping"}, headers=keyed(auth, key))
    retry = client.post(f"{path}?wait=10", json={"message": "ping"}, headers=keyed(auth, key))
    quick = client.post(path, json={"message": "ping"}, headers=keyed(auth, key))

    assert first.status_code == retry.status_code == 200
    assert first.get_json()["reply"]["text"] == "you said: ping"
    assert retry.get_json() == first.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert quick.status_code == 202  # what was recorded: the write's answer, not the wait's
    assert quick.get_json() == {"thread_id": thread_id, "position": first.get_json()["position"]}
    assert event_types(store, thread_id).count("UserMessageAdded") == 2


def test_before_the_installer_made_the_table_a_keyed_write_is_refused_as_unavailable(
    client: FlaskClient, auth: dict[str, str], store: MessageStore
) -> None:
    """A deploy starts the new ingest before the installer job runs: nothing is written, and the
    client's retry with the same key is served once the table is there."""
    thread_id = start(client, auth)
    headers = keyed(auth)
    path = f"/v1/threads/{thread_id}/messages"
    with store.connection() as conn:
        conn.execute("ALTER TABLE agent.idempotent_responses RENAME TO idempotent_responses_away")
    try:
        refused = client.post(path, json={"message": "m"}, headers=headers)
    finally:
        with store.connection() as conn:
            conn.execute(
                "ALTER TABLE agent.idempotent_responses_away RENAME TO idempotent_responses"
            )

    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "unavailable"
    assert event_types(store, thread_id).count("UserMessageAdded") == 1
    retry = client.post(path, json={"message": "m"}, headers=headers)
    assert retry.status_code == 202
    assert event_types(store, thread_id).count("UserMessageAdded") == 2
