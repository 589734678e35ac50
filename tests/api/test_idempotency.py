"""`Idempotency-Key`: a retried POST gets the first answer and writes nothing new."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, bearer, event_types, start

from messagedb_agent.api.idempotency import record_stream
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


def test_the_first_answer_is_recorded_as_an_event(
    client: FlaskClient, auth: dict[str, str], store: MessageStore, user: str
) -> None:
    key = str(uuid.uuid4())
    response = client.post("/v1/threads", headers=keyed(auth, key))

    [recorded] = store.read_stream(record_stream(user, key))

    assert recorded.type == "ApiResponseRecorded"
    assert recorded.data["status"] == 201
    assert recorded.data["body"] == response.get_json()


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
