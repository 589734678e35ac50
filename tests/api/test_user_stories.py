"""The four user stories of the chat feature, told through the HTTP API on the embedded default:
the offline stand-in model, the real task tools and the real engine, run in-process."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, bearer, start

from messagedb_agent.engine.runner import run_until_idle
from messagedb_agent.engine.step import Engine
from messagedb_agent.llm.offline import OFFLINE_NOTE, OfflineModel
from messagedb_agent.notification import Notification
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore

TOOL_NAMES = ("add_task", "list_tasks", "complete_task", "update_task", "delete_task")


class Stepping:
    """Plays Pub/Sub plus the step function: each notification runs the engine on a thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.workers: list[threading.Thread] = []

    def publish(self, notifications: Sequence[Notification]) -> None:
        for notification in notifications:
            worker = threading.Thread(target=self._run, args=(notification,), daemon=True)
            worker.start()
            self.workers.append(worker)

    def _run(self, notification: Notification) -> None:
        run_until_idle(self.engine, notification, max_wait=10)

    def join(self) -> None:
        for worker in self.workers:
            worker.join(20)


@pytest.fixture
def stepping(store: MessageStore, settings: Settings) -> Iterator[Stepping]:
    publisher = Stepping(build_engine(settings, store, OfflineModel()))
    yield publisher
    publisher.join()


@pytest.fixture
def chat(make_api: MakeApi, stepping: Stepping) -> Iterator[FlaskClient]:
    with make_api(stepping).flask_app().test_client() as test_client:
        yield test_client


class Thread:
    """One conversation through the API: `say` posts a message and waits for the reply."""

    def __init__(self, client: FlaskClient, auth: dict[str, str]) -> None:
        self.client = client
        self.auth = auth
        self.id = start(client, auth, None)

    def say(self, message: str) -> str:
        """The reply; a call that waits for approval (deleting does) is approved first, as
        the user of a front-end would when asked."""
        response = self.client.post(
            f"/v1/threads/{self.id}/messages?wait=20", json={"message": message}, headers=self.auth
        )
        if response.status_code == 202:
            text = self._approved_reply(response.get_json()["position"])
        else:
            assert response.status_code == 200, response.get_json()
            text = response.get_json()["reply"]["text"]
        return text.removeprefix(OFFLINE_NOTE).strip()

    def _approved_reply(self, position: int, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            detail = self.detail()
            for approval in detail["pending_approvals"]:
                decided = self.client.post(
                    f"/v1/threads/{self.id}/approvals/{approval['tool_call_id']}",
                    json={"decision": "approve"},
                    headers=self.auth,
                )
                assert decided.status_code == 200, decided.get_json()
            replies = [
                m["text"]
                for m in detail["messages"]
                if m["role"] == "assistant" and m["position"] > position
            ]
            if replies and not detail["pending_approvals"]:
                return str(replies[0])
            time.sleep(0.05)
        raise AssertionError(f"no reply after position {position}")

    def detail(self) -> dict[str, Any]:
        response = self.client.get(f"/v1/threads/{self.id}", headers=self.auth)
        assert response.status_code == 200
        body: dict[str, Any] = response.get_json()
        return body

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return [(c["name"], c["arguments"]) for c in self.detail()["tool_calls"]]


def _no_internal_names(text: str) -> None:
    for name in (*TOOL_NAMES, "task_id", "Call ", "invalid_arguments", "Traceback"):
        assert name not in text, text


# -- US1: natural language task management --------------------------------------------------


def test_us1_add_a_task_to_buy_groceries_creates_it_and_confirms(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)

    reply = thread.say("Add a task to buy groceries")

    assert reply == "Added task #1 “buy groceries”."
    assert thread.calls() == [("add_task", {"title": "buy groceries"})]


def test_us1_each_intent_add_list_complete_update_delete_is_understood(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)

    assert "Added" in thread.say("Add task: buy groceries")
    assert "Added" in thread.say("I need to pay the electricity bill")
    assert "buy groceries" in thread.say("Show my tasks")
    assert "Marked task #1 “buy groceries” as done" in thread.say("done with the groceries")
    assert "Renamed task #2 to “pay the gas bill”" in thread.say(
        "rename the electricity bill to pay the gas bill"
    )
    assert "Deleted task #2" in thread.say("delete the gas bill task")

    assert [name for name, _ in thread.calls()] == [
        "add_task",
        "add_task",
        "list_tasks",
        "list_tasks",
        "complete_task",
        "list_tasks",
        "update_task",
        "list_tasks",
        "delete_task",
    ]


def test_us1_a_title_and_description_come_from_the_sentence(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)

    thread.say("add a task to pay rent with description before Friday")
    reply = thread.say("change the description of rent to pay online before Friday")

    assert ("add_task", {"title": "pay rent", "description": "before Friday"}) in thread.calls()
    assert ("update_task", {"task_id": 1, "description": "pay online before Friday"}) in (
        thread.calls()
    )
    assert "pay online before Friday" in reply


def test_us1_several_tasks_are_managed_in_one_conversation_and_one_message(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)

    reply = thread.say("Add buy stamps and post the letter")
    count = thread.say("How many tasks do I have?")

    assert "task #1 “buy stamps”" in reply
    assert "task #2 “post the letter”" in reply
    assert count.startswith("You have 2 tasks:")


def test_us1_the_tool_calls_are_recorded_with_the_conversation(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)

    thread.say("add a task to buy milk")

    [call] = thread.detail()["tool_calls"]
    assert (call["name"], call["status"]) == ("add_task", "completed")
    assert call["result"]["task"]["title"] == "buy milk"


# -- US2: multi-turn conversation, state rebuilt from the store ---------------------------------


def test_us2_history_is_kept_in_order_and_survives_a_new_api_and_engine(
    make_api: MakeApi, store: MessageStore, settings: Settings, auth: dict[str, str]
) -> None:
    first = Stepping(build_engine(settings, store, OfflineModel()))
    with make_api(first).flask_app().test_client() as client:
        thread = Thread(client, auth)
        thread.say("add a task to buy milk")
        thread.say("add a task to walk the dog")
    first.join()

    restarted = Stepping(build_engine(settings, store, OfflineModel()))  # nothing in memory
    with make_api(restarted).flask_app().test_client() as client:
        thread.client = client
        reply = thread.say("mark milk done")
        messages = thread.detail()["messages"]
    restarted.join()

    assert "Marked task #1 “buy milk” as done" in reply
    assert [(m["role"], m["text"]) for m in messages if m["role"] == "user"] == [
        ("user", "add a task to buy milk"),
        ("user", "add a task to walk the dog"),
        ("user", "mark milk done"),
    ]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3


def test_us2_another_user_cannot_read_the_conversation(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)
    thread.say("add a task to buy milk")

    response = chat.get(f"/v1/threads/{thread.id}", headers=bearer("someone-else"))

    assert response.status_code in (403, 404)


def test_us2_another_users_tasks_are_not_theirs(chat: FlaskClient, auth: dict[str, str]) -> None:
    Thread(chat, auth).say("add a task to buy milk")

    reply = Thread(chat, bearer("someone-else")).say("list my tasks")

    assert reply == "You have no tasks."


# -- US3: tool chaining ----------------------------------------------------------------------


def _seed(thread: Thread) -> None:
    thread.say("add a task to buy milk and add a task to walk the dog")
    thread.say("add a task to call mom")
    thread.say("mark task 1 done and mark task 3 done")


def test_us3_delete_completed_tasks(chat: FlaskClient, auth: dict[str, str]) -> None:
    thread = Thread(chat, auth)
    _seed(thread)

    reply = thread.say("delete completed tasks")
    listing = thread.say("list my tasks")

    assert "Deleted 2 completed tasks" in reply
    assert "buy milk" in reply
    assert "call mom" in reply
    assert "walk the dog" in listing
    assert "buy milk" not in listing
    assert "call mom" not in listing


def test_us3_list_all_tasks_then_delete_completed_ones(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)
    _seed(thread)
    before = len(thread.calls())

    reply = thread.say("List all tasks then delete completed ones")

    chained = [name for name, _ in thread.calls()[before:]]
    assert chained == ["list_tasks", "delete_task", "delete_task", "list_tasks"]
    assert "Deleted 2 completed tasks" in reply
    remaining = reply.split("Your tasks:")[1].split("Deleted")[0]
    assert "walk the dog" in remaining
    assert "buy milk" not in remaining


def test_us3_show_and_mark_done_chains_a_listing_and_a_change(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)
    thread.say("add a task to buy milk")

    reply = thread.say("show my tasks and mark task 1 as done")

    assert "Marked task #1 “buy milk” as done." in reply
    assert "- [x] #1 buy milk" in reply  # the listing shows the change made in the same message


def test_us3_show_and_mark_important_chains_a_listing_and_an_update(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)
    thread.say("add a task to buy milk and add a task to call the bank")

    reply = thread.say("show my tasks and mark the bank one as important")

    assert [name for name, _ in thread.calls()][-3:] == ["list_tasks", "update_task", "list_tasks"]
    assert thread.calls()[-2][1] == {"task_id": 2, "important": True}
    assert "Marked task #2 “call the bank” as important." in reply
    assert "- [ ] #2 call the bank (important)" in reply


def test_us3_a_failing_call_does_not_stop_the_others(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)
    thread.say("add a task to buy milk")

    reply = thread.say("mark task 9 done and add a task to walk the dog")

    assert "Added task #2 “walk the dog”." in reply
    assert "I don't see task #9" in reply


def test_us3_with_nothing_completed_it_says_so(chat: FlaskClient, auth: dict[str, str]) -> None:
    thread = Thread(chat, auth)
    thread.say("add a task to buy milk")

    assert thread.say("get rid of everything I've completed") == (
        "You have no completed tasks to delete."
    )


# -- US4: graceful errors --------------------------------------------------------------------


def test_us4_an_unknown_task_id_gets_a_friendly_answer(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)

    reply = thread.say("delete task 42")

    assert reply.startswith("I don't see task #42")
    _no_internal_names(reply)


def test_us4_a_very_long_title_gets_a_short_answer_without_a_schema_error(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)

    reply = thread.say("add a task to " + "b" * 4900)

    assert len(reply) < 300
    _no_internal_names(reply)
    assert not re.search(r"b{100}", reply)


def test_us4_an_empty_message_is_refused_with_a_plain_reason(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)

    response = chat.post(f"/v1/threads/{thread.id}/messages", json={"message": " "}, headers=auth)

    assert response.status_code in (400, 422)
    assert "Traceback" not in response.get_data(as_text=True)


def test_us4_an_expired_token_is_refused_with_401(chat: FlaskClient) -> None:
    response = chat.post("/v1/threads", json={"message": "hi"}, headers=bearer("someone", ttl=-60))

    assert response.status_code == 401


def test_us4_a_message_it_does_not_understand_gets_guidance(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Thread(chat, auth)

    first = thread.say("tell me a joke")
    second = thread.say("sing me a song")

    assert "add a task to buy milk" in first
    assert len(second) < 120
    _no_internal_names(first + second)
