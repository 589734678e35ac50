"""Tool approval through the HTTP API, on the embedded default: the offline model, the real task
tools and the real engine run in-process, a real Message DB behind them.

With the default setting (TOOLS_REQUIRING_APPROVAL=delete_task) "delete task 2" stops the turn
until the thread's owner decides with `POST /v1/threads/{id}/approvals/{tool_call_id}`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, bearer, start
from tests.api.test_openapi import conforms
from tests.api.test_user_stories import Stepping
from tests.threads.archiving import backdate, rows

from messagedb_agent.api.transcript import ENDED_UNAPPROVED
from messagedb_agent.llm.offline import OFFLINE_NOTE, OfflineModel
from messagedb_agent.notification import Notification
from messagedb_agent.projections.llm_context import CANCELLED_CALL
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.settings.agent import EngineSettings
from messagedb_agent.store.client import MessageStore
from messagedb_agent.store.stream_name import thread_stream
from messagedb_agent.threads import archive, commands
from messagedb_agent.tools.tasks import read_task_list, tasks_stream

PATH = "/v1/threads/{thread_id}/approvals/{tool_call_id}"
DECISION_TYPES = ("ToolApprovalGranted", "ToolApprovalDenied")


class Recording(Stepping):
    """Steps the engine on every notification, and keeps what was published."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.published: list[Notification] = []

    def publish(self, notifications: Sequence[Notification]) -> None:
        self.published.extend(notifications)
        super().publish(notifications)


# TOOLS_REQUIRING_APPROVAL as shipped, whatever the environment running the tests says
DEFAULT_APPROVAL = EngineSettings.model_fields["tools_requiring_approval"].default


def defaults(settings: Settings, **changes: Any) -> Settings:
    return settings.replace(tools_requiring_approval=DEFAULT_APPROVAL, **changes)


@pytest.fixture
def stepping(store: MessageStore, settings: Settings) -> Iterator[Recording]:
    # the offline model, as every API test that runs the engine (no model is configured)
    publisher = Recording(build_engine(defaults(settings), store, OfflineModel()))
    yield publisher
    publisher.join()


@pytest.fixture
def chat(make_api: MakeApi, stepping: Recording) -> Iterator[FlaskClient]:
    with make_api(stepping).flask_app().test_client() as test_client:
        yield test_client


T = TypeVar("T")


def eventually(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 20) -> T:
    """`read()` once `done` holds for it; the test fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {value}")
        time.sleep(0.05)


class Conversation:
    """One thread through the API, with the engine stepping it in the background."""

    def __init__(self, client: FlaskClient, auth: dict[str, str]) -> None:
        self.client = client
        self.auth = auth
        self.id = start(client, auth, None)
        self.stream = thread_stream(self.id)

    def say(self, message: str) -> str:
        response = self.client.post(
            f"/v1/threads/{self.id}/messages?wait=20", json={"message": message}, headers=self.auth
        )
        assert response.status_code == 200, response.get_json()
        return _plain(response.get_json()["reply"]["text"])

    def ask_to_delete(self, message: str = "delete task 2") -> dict[str, Any]:
        """Send a message whose turn stops for an approval; the detail once it waits."""
        response = self.client.post(
            f"/v1/threads/{self.id}/messages?wait=20", json={"message": message}, headers=self.auth
        )
        assert response.status_code == 202, response.get_json()  # no reply before the decision
        return eventually(self.detail, lambda d: bool(d["pending_approvals"]))

    def detail(self) -> dict[str, Any]:
        response = self.client.get(f"/v1/threads/{self.id}", headers=self.auth)
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def decide(
        self,
        tool_call_id: str,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        path = PATH.format(thread_id=self.id, tool_call_id=tool_call_id)
        chosen = self.auth if headers is None else headers
        return self.client.post(path, json=body, headers=chosen, **kwargs)

    def reply_after(self, position: int) -> str:
        """The assistant's first message after `position`, once the engine has written it."""
        detail = eventually(
            self.detail,
            lambda d: any(
                m["role"] == "assistant" and m["position"] > position for m in d["messages"]
            ),
        )
        text = next(
            m["text"]
            for m in detail["messages"]
            if m["role"] == "assistant" and m["position"] > position
        )
        return _plain(text)

    def call(self, name: str) -> dict[str, Any]:
        calls: list[dict[str, Any]] = self.detail()["tool_calls"]
        [call] = [c for c in calls if c["name"] == name]
        return call

    def event_types(self, store: MessageStore) -> list[str]:
        return [m.type for m in store.read_stream(self.stream)]


def _plain(text: str) -> str:
    return text.removeprefix(OFFLINE_NOTE).strip()


@pytest.fixture
def waiting(chat: FlaskClient, auth: dict[str, str]) -> tuple[Conversation, dict[str, Any]]:
    """A conversation with two tasks, waiting for approval to delete task 2."""
    thread = Conversation(chat, auth)
    thread.say("add a task to buy milk and add a task to walk the dog")
    detail = thread.ask_to_delete("delete task 2")
    [approval] = detail["pending_approvals"]
    return thread, approval


def decisions(store: MessageStore, thread: Conversation) -> list[str]:
    return [t for t in thread.event_types(store) if t in DECISION_TYPES]


def tools_with(store: MessageStore, thread: Conversation, event_type: str) -> list[str]:
    """The tool of each event of `event_type` in the thread."""
    return [m.data["tool_name"] for m in store.read_stream(thread.stream) if m.type == event_type]


def requested_tools(store: MessageStore, thread: Conversation) -> list[str]:
    """The tools the engine asked to run on the thread."""
    return tools_with(store, thread, "ToolExecutionRequested")


def task_titles(store: MessageStore, user: str) -> dict[int, str]:
    return {task.id: task.title for task in read_task_list(store, user).select()}


def deletions(store: MessageStore, user: str) -> int:
    return [m.type for m in store.read_stream(tasks_stream(user))].count("TaskDeleted")


# -- the setting these tests run with --------------------------------------------------------


def test_by_default_deleting_a_task_requires_approval(settings: Settings) -> None:
    assert DEFAULT_APPROVAL == "delete_task"
    assert defaults(settings).engine.approval_patterns == ("delete_task",)


# -- a call waits ----------------------------------------------------------------------------


def test_deleting_a_task_waits_for_the_owners_approval(
    chat: FlaskClient, auth: dict[str, str], store: MessageStore, user: str
) -> None:
    thread = Conversation(chat, auth)
    thread.say("add a task to buy milk and add a task to walk the dog")
    asked_after = datetime.now(UTC)

    detail = thread.ask_to_delete("delete task 2")

    [approval] = detail["pending_approvals"]
    [call] = [c for c in detail["tool_calls"] if c["name"] == "delete_task"]
    assert (call["status"], call["arguments"]) == ("awaiting_approval", {"task_id": 2})
    assert call["error"] is None
    assert call["result"] is None
    assert approval["tool_call_id"] == call["id"]
    assert (approval["tool"], approval["arguments"]) == ("delete_task", {"task_id": 2})
    assert approval["expires_at"] is None  # no TOOL_APPROVAL_TTL_SECONDS: it waits for ever
    requested_at = datetime.fromisoformat(approval["requested_at"])
    assert requested_at.tzinfo is not None
    assert asked_after.timestamp() - 5 <= requested_at.timestamp() <= time.time() + 5
    events = chat.get(f"/v1/threads/{thread.id}/events", headers=auth).get_json()["events"]
    [asked] = [e for e in events if e["type"] == "ToolApprovalRequested"]
    assert asked["position"] == approval["position"]
    assert asked["data"]["tool_call_id"] == call["id"]
    assert task_titles(store, user) == {1: "buy milk", 2: "walk the dog"}
    assert deletions(store, user) == 0


def test_a_waiting_delete_leaves_the_task_in_the_list_another_thread_reads(
    waiting: tuple[Conversation, dict[str, Any]], chat: FlaskClient, auth: dict[str, str]
) -> None:
    listing = Conversation(chat, auth).say("list my tasks")

    assert "walk the dog" in listing
    assert "buy milk" in listing


def test_the_waiting_thread_answers_with_its_approval_on_every_read(
    waiting: tuple[Conversation, dict[str, Any]], stepping: Recording
) -> None:
    thread, approval = waiting
    stepping.join()  # the engine is idle: nothing runs while the call waits

    detail = thread.detail()

    assert detail["pending_approvals"] == [approval]
    assert thread.call("delete_task")["status"] == "awaiting_approval"


# -- approve ---------------------------------------------------------------------------------


def test_approving_deletes_the_task_once_and_the_reply_says_so(
    waiting: tuple[Conversation, dict[str, Any]],
    stepping: Recording,
    store: MessageStore,
    user: str,
) -> None:
    thread, approval = waiting

    response = thread.decide(approval["tool_call_id"], {"decision": "approve"})

    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer == {
        "thread_id": thread.id,
        "tool_call_id": approval["tool_call_id"],
        "decision": "approved",
        "reason": None,
        "position": answer["position"],
    }
    assert answer["position"] > approval["position"]
    reply = thread.reply_after(answer["position"])
    stepping.join()
    assert reply.startswith("Deleted task #2"), reply
    assert "walk the dog" in reply
    assert task_titles(store, user) == {1: "buy milk"}
    assert deletions(store, user) == 1
    detail = thread.detail()
    assert detail["pending_approvals"] == []
    [call] = [c for c in detail["tool_calls"] if c["name"] == "delete_task"]
    assert call["status"] == "completed"
    assert call["result"]["deleted"]["id"] == 2
    assert decisions(store, thread) == ["ToolApprovalGranted"]
    assert requested_tools(store, thread).count("delete_task") == 1
    assert tools_with(store, thread, "ToolExecutionCompleted").count("delete_task") == 1


def test_the_decision_is_published_so_the_step_runs(
    waiting: tuple[Conversation, dict[str, Any]], stepping: Recording
) -> None:
    thread, approval = waiting
    before = len(stepping.published)

    answer = thread.decide(approval["tool_call_id"], {"decision": "approve"}).get_json()

    assert [(n.stream_name, n.position) for n in stepping.published[before:]] == [
        (thread.stream, answer["position"])
    ]


def test_the_thread_goes_on_after_an_approved_delete(
    waiting: tuple[Conversation, dict[str, Any]], stepping: Recording
) -> None:
    thread, approval = waiting
    answer = thread.decide(approval["tool_call_id"], {"decision": "approve"}).get_json()
    thread.reply_after(answer["position"])
    stepping.join()

    listing = thread.say("list my tasks")

    assert "buy milk" in listing
    assert "walk the dog" not in listing


# -- reject ----------------------------------------------------------------------------------


def test_rejecting_with_a_reason_keeps_the_task_and_the_model_says_so(
    waiting: tuple[Conversation, dict[str, Any]],
    stepping: Recording,
    store: MessageStore,
    user: str,
) -> None:
    thread, approval = waiting

    response = thread.decide(
        approval["tool_call_id"], {"decision": "reject", "reason": "I still need it"}
    )

    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert (answer["decision"], answer["reason"]) == ("declined", "I still need it")
    reply = thread.reply_after(answer["position"])
    stepping.join()
    assert "didn't delete" in reply, reply
    assert "I still need it" in reply
    assert "Deleted" not in reply
    call = thread.call("delete_task")
    assert call["status"] == "declined"
    assert call["error"] == "the user declined: I still need it"
    assert call["result"] is None
    assert thread.detail()["pending_approvals"] == []
    assert task_titles(store, user) == {1: "buy milk", 2: "walk the dog"}
    assert deletions(store, user) == 0
    assert decisions(store, thread) == ["ToolApprovalDenied"]
    assert "delete_task" not in requested_tools(store, thread)


def test_rejecting_without_a_reason_says_the_user_declined(
    waiting: tuple[Conversation, dict[str, Any]], stepping: Recording
) -> None:
    thread, approval = waiting

    answer = thread.decide(approval["tool_call_id"], {"decision": "reject"}).get_json()
    reply = thread.reply_after(answer["position"])
    stepping.join()

    assert (answer["decision"], answer["reason"]) == ("declined", None)
    assert "didn't delete" in reply, reply
    assert thread.call("delete_task")["error"] == "the user declined, so it was not run"


# -- deciding twice --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "other", "said"),
    [("approve", "reject", "already approved"), ("reject", "approve", "already declined")],
)
def test_the_same_decision_again_is_answered_as_it_was_and_a_different_one_is_refused(
    waiting: tuple[Conversation, dict[str, Any]],
    stepping: Recording,
    store: MessageStore,
    decision: str,
    other: str,
    said: str,
) -> None:
    thread, approval = waiting
    call_id = approval["tool_call_id"]

    first = thread.decide(call_id, {"decision": decision, "reason": "first"})
    published = len(stepping.published)
    again = thread.decide(call_id, {"decision": decision, "reason": "second"})
    refused = thread.decide(call_id, {"decision": other})

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.get_json() == first.get_json()  # the first decision, its reason included
    assert again.get_json()["reason"] == "first"
    assert len(stepping.published) == published  # the repeat published nothing
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "approval_decided"
    assert said in error["message"]
    thread.reply_after(first.get_json()["position"])
    stepping.join()
    assert len(decisions(store, thread)) == 1


def test_a_repeat_after_the_call_ran_still_answers_the_first_decision(
    waiting: tuple[Conversation, dict[str, Any]],
    stepping: Recording,
    store: MessageStore,
    user: str,
) -> None:
    thread, approval = waiting
    first = thread.decide(approval["tool_call_id"], {"decision": "approve"}).get_json()
    thread.reply_after(first["position"])
    stepping.join()
    published = len(stepping.published)
    version = store.stream_version(thread.stream)

    again = thread.decide(approval["tool_call_id"], {"decision": "approve"})
    refused = thread.decide(approval["tool_call_id"], {"decision": "reject"})
    stepping.join()

    assert again.status_code == 200
    assert again.get_json() == first
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "approval_decided"
    assert len(stepping.published) == published
    assert store.stream_version(thread.stream) == version
    assert deletions(store, user) == 1


# -- refusals --------------------------------------------------------------------------------


def test_an_unknown_call_id_is_approval_not_found(
    waiting: tuple[Conversation, dict[str, Any]], store: MessageStore
) -> None:
    thread, _ = waiting
    version = store.stream_version(thread.stream)

    response = thread.decide("no-such-call", {"decision": "approve"})

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "approval_not_found"
    assert store.stream_version(thread.stream) == version


def test_a_thread_waiting_for_nothing_has_no_approval_to_decide(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = Conversation(chat, auth)
    thread.say("add a task to buy milk")
    call_id = thread.detail()["tool_calls"][0]["id"]  # a call that ran without approval

    response = thread.decide(call_id, {"decision": "approve"})

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "approval_not_found"


def test_another_user_cannot_decide_and_learns_nothing(
    waiting: tuple[Conversation, dict[str, Any]], store: MessageStore
) -> None:
    thread, approval = waiting
    version = store.stream_version(thread.stream)
    stranger = bearer(f"stranger-{uuid.uuid4().hex[:8]}")

    response = thread.decide(approval["tool_call_id"], {"decision": "approve"}, headers=stranger)
    unknown = thread.decide("no-such-call", {"decision": "approve"}, headers=stranger)

    assert response.status_code == unknown.status_code == 404
    assert response.get_json()["error"]["code"] == "thread_not_found"
    assert unknown.get_json() == response.get_json()  # nothing tells the calls apart
    assert store.stream_version(thread.stream) == version
    assert thread.detail()["pending_approvals"] == [approval]


def test_an_unknown_thread_is_thread_not_found(chat: FlaskClient, auth: dict[str, str]) -> None:
    path = PATH.format(thread_id=uuid.uuid4(), tool_call_id="c0")

    response = chat.post(path, json={"decision": "approve"}, headers=auth)

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "thread_not_found"


def test_deciding_needs_a_token(waiting: tuple[Conversation, dict[str, Any]]) -> None:
    thread, approval = waiting

    response = thread.decide(approval["tool_call_id"], {"decision": "approve"}, headers={})

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


INVALID_BODIES: list[tuple[str, Any, str | None]] = [
    ("missing decision", {}, "decision"),
    ("only a reason", {"reason": "because"}, "decision"),
    ("decision maybe", {"decision": "maybe"}, "decision"),
    ("decision in capitals", {"decision": "APPROVE"}, "decision"),
    ("the answer's word", {"decision": "approved"}, "decision"),
    ("decision null", {"decision": None}, "decision"),
    ("decision a boolean", {"decision": True}, "decision"),
    ("reason over 500", {"decision": "reject", "reason": "x" * 501}, "reason"),
    ("NUL in reason", {"decision": "reject", "reason": "no\x00way"}, "reason"),
    ("reason a number", {"decision": "reject", "reason": 5}, "reason"),
    ("unknown field", {"decision": "approve", "comment": "ok"}, "comment"),
    ("an array", ["approve"], None),
    ("a string", "approve", None),
    ("null", None, None),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in INVALID_BODIES], ids=[n for n, _, _ in INVALID_BODIES]
)
def test_an_invalid_body_is_a_400_that_names_what_is_wrong_and_writes_nothing(
    waiting: tuple[Conversation, dict[str, Any]],
    store: MessageStore,
    body: Any,
    field: str | None,
) -> None:
    thread, approval = waiting
    version = store.stream_version(thread.stream)

    response = thread.decide(approval["tool_call_id"], body)

    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert [d.get("field") for d in error["details"]] == [field]
    if field == "comment":
        assert error["details"][0]["message"] == "unknown field"
    assert "Traceback" not in response.get_data(as_text=True)
    assert store.stream_version(thread.stream) == version
    assert thread.detail()["pending_approvals"] == [approval]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (None, None, 400, "invalid_request"),  # no body
        ('{"decision": "approve"', "application/json", 400, "invalid_json"),
        ('{"decision": "approve"}', "text/plain", 415, "unsupported_media_type"),
        ("decision=approve", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
    ids=["no body", "broken JSON", "text", "a form"],
)
def test_a_body_that_is_not_a_json_object_is_refused_with_its_code(
    waiting: tuple[Conversation, dict[str, Any]],
    data: str | None,
    content_type: str | None,
    status: int,
    code: str,
) -> None:
    thread, approval = waiting
    path = PATH.format(thread_id=thread.id, tool_call_id=approval["tool_call_id"])
    headers = {**thread.auth, **({"Content-Type": content_type} if content_type else {})}

    response = thread.client.post(path, data=data, headers=headers)

    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_a_reason_of_exactly_500_characters_is_kept(
    waiting: tuple[Conversation, dict[str, Any]], stepping: Recording
) -> None:
    thread, approval = waiting
    reason = "é" * 500  # characters, not bytes

    response = thread.decide(approval["tool_call_id"], {"decision": "reject", "reason": reason})
    thread.reply_after(response.get_json()["position"])
    stepping.join()

    assert response.status_code == 200
    assert response.get_json()["reason"] == reason
    assert thread.call("delete_task")["error"] == f"the user declined: {reason}"


# -- Idempotency-Key -------------------------------------------------------------------------


def test_an_idempotency_key_replay_answers_the_first_answer(
    waiting: tuple[Conversation, dict[str, Any]],
    stepping: Recording,
    store: MessageStore,
    user: str,
) -> None:
    thread, approval = waiting
    keyed = {**thread.auth, "Idempotency-Key": str(uuid.uuid4())}
    call_id = approval["tool_call_id"]

    first = thread.decide(call_id, {"decision": "approve"}, headers=keyed)
    published = len(stepping.published)
    replay = thread.decide(call_id, {"decision": "approve"}, headers=keyed)
    reused = thread.decide(call_id, {"decision": "reject"}, headers=keyed)

    assert first.status_code == replay.status_code == 200
    assert replay.get_json() == first.get_json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(stepping.published) == published
    assert reused.status_code == 422
    assert reused.get_json()["error"]["code"] == "idempotency_key_reused"
    thread.reply_after(first.get_json()["position"])
    stepping.join()
    assert decisions(store, thread) == ["ToolApprovalGranted"]
    assert deletions(store, user) == 1


def test_a_refusal_under_an_idempotency_key_is_replayed_too(
    waiting: tuple[Conversation, dict[str, Any]],
) -> None:
    thread, approval = waiting
    thread.decide(approval["tool_call_id"], {"decision": "reject"})
    keyed = {**thread.auth, "Idempotency-Key": str(uuid.uuid4())}

    first = thread.decide(approval["tool_call_id"], {"decision": "approve"}, headers=keyed)
    replay = thread.decide(approval["tool_call_id"], {"decision": "approve"}, headers=keyed)

    assert first.status_code == replay.status_code == 409
    assert replay.get_json() == first.get_json()


def test_a_new_key_for_the_same_decision_answers_the_first_decision(
    waiting: tuple[Conversation, dict[str, Any]], store: MessageStore
) -> None:
    thread, approval = waiting
    call_id = approval["tool_call_id"]

    first = thread.decide(
        call_id, {"decision": "approve"}, headers={**thread.auth, "Idempotency-Key": "a-1"}
    )
    second = thread.decide(
        call_id, {"decision": "approve"}, headers={**thread.auth, "Idempotency-Key": "a-2"}
    )

    assert first.status_code == second.status_code == 200
    assert second.get_json() == first.get_json()
    assert "Idempotent-Replayed" not in second.headers
    assert len(decisions(store, thread)) == 1


# -- the document ----------------------------------------------------------------------------


@pytest.fixture
def document(chat: FlaskClient) -> dict[str, Any]:
    response = chat.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def test_the_route_is_documented_with_its_answers(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/threads/{thread_id}/approvals/{tool_call_id}"]["post"]
    schemas = document["components"]["schemas"]

    assert operation["operationId"] == "decideApproval"
    assert operation["security"] == [{"bearerAuth": []}]
    assert [p["name"] for p in operation["parameters"] if p["in"] == "path"] == [
        "thread_id",
        "tool_call_id",
    ]
    assert operation["requestBody"]["required"] is True
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApprovalDecisionRequest"
    }
    responses = operation["responses"]
    assert responses["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApprovalDecided"
    }
    for status in ("400", "401", "404", "409"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    request = schemas["ApprovalDecisionRequest"]
    assert request["required"] == ["decision"]
    assert request["additionalProperties"] is False
    assert request["properties"]["decision"]["enum"] == ["approve", "reject"]
    reason = next(o for o in request["properties"]["reason"]["anyOf"] if o["type"] == "string")
    assert reason["maxLength"] == 500
    assert schemas["ApprovalDecided"]["properties"]["decision"]["enum"] == [
        "approved",
        "declined",
    ]
    detail = schemas["ThreadDetail"]["properties"]
    assert "pending_approvals" in detail
    statuses = schemas["ToolCallView"]["properties"]["status"]["enum"]
    assert {"awaiting_approval", "declined"} <= set(statuses)


def test_the_answers_match_the_documented_schemas(
    waiting: tuple[Conversation, dict[str, Any]],
    document: dict[str, Any],
    stepping: Recording,
) -> None:
    thread, approval = waiting
    call_id = approval["tool_call_id"]
    conforms(document, "ThreadDetail", thread.detail())

    decided = thread.decide(call_id, {"decision": "reject", "reason": "no"})
    conflict = thread.decide(call_id, {"decision": "approve"})
    missing = thread.decide("nope", {"decision": "approve"})
    invalid = thread.decide(call_id, {"decision": "maybe"})
    thread.reply_after(decided.get_json()["position"])
    stepping.join()

    conforms(document, "ApprovalDecided", decided.get_json())
    for refused in (conflict, missing, invalid):
        conforms(document, "ErrorBody", refused.get_json())
    conforms(document, "ThreadDetail", thread.detail())


# -- several calls, paging, an ended thread, expiry, the archive --------------------------------


def test_each_of_several_waiting_calls_is_decided_on_its_own(
    chat: FlaskClient, auth: dict[str, str], stepping: Recording, store: MessageStore, user: str
) -> None:
    thread = Conversation(chat, auth)
    thread.say("add a task to buy milk and add a task to walk the dog")
    thread.say("add a task to call mom")
    thread.say("mark task 1 done and mark task 3 done")

    detail = thread.ask_to_delete("delete completed tasks")
    first, second = detail["pending_approvals"]
    assert [a["arguments"] for a in (first, second)] == [{"task_id": 1}, {"task_id": 3}]
    approved = thread.decide(first["tool_call_id"], {"decision": "approve"}).get_json()
    stepping.join()
    eventually(lambda: deletions(store, user), lambda n: n == 1)  # the approved call ran
    stepping.join()
    assert thread.detail()["pending_approvals"] == [second]  # the other still waits
    assert [m["role"] for m in thread.detail()["messages"]][-1] == "user"  # no reply yet
    declined = thread.decide(second["tool_call_id"], {"decision": "reject", "reason": "later"})
    reply = thread.reply_after(declined.get_json()["position"])
    stepping.join()

    assert approved["decision"] == "approved"
    assert "buy milk" in reply, reply
    assert task_titles(store, user) == {2: "walk the dog", 3: "call mom"}
    assert deletions(store, user) == 1
    statuses = [c["status"] for c in thread.detail()["tool_calls"] if c["name"] == "delete_task"]
    assert statuses == ["completed", "declined"]


def test_a_page_of_the_transcript_keeps_the_pending_approvals(
    waiting: tuple[Conversation, dict[str, Any]],
) -> None:
    thread, approval = waiting

    page = thread.client.get(f"/v1/threads/{thread.id}?limit=1&order=newest", headers=thread.auth)

    assert page.status_code == 200
    assert len(page.get_json()["messages"]) == 1
    assert page.get_json()["pending_approvals"] == [approval]


def test_an_ended_thread_has_nothing_waiting_and_refuses_a_decision(
    waiting: tuple[Conversation, dict[str, Any]],
    stepping: Recording,
    store: MessageStore,
    user: str,
) -> None:
    thread, approval = waiting
    ended = thread.client.post(f"/v1/threads/{thread.id}/end", headers=thread.auth)
    assert ended.status_code == 202
    eventually(thread.detail, lambda d: d["status"] == "terminated")
    stepping.join()

    response = thread.decide(approval["tool_call_id"], {"decision": "approve"})
    stepping.join()

    assert response.status_code == 409, response.get_json()
    assert response.get_json()["error"]["code"] == "thread_closed"
    detail = thread.detail()
    assert detail["pending_approvals"] == []
    [call] = [c for c in detail["tool_calls"] if c["name"] == "delete_task"]
    assert call["status"] == "declined"
    assert call["error"] == ENDED_UNAPPROVED
    assert decisions(store, thread) == []
    assert deletions(store, user) == 0


@pytest.fixture
def expiring(
    make_api: MakeApi, store: MessageStore, settings: Settings
) -> Iterator[tuple[FlaskClient, Recording]]:
    """The API and an engine whose approvals expire after a second."""
    short = defaults(settings, tool_approval_ttl_seconds=1)
    publisher = Recording(build_engine(short, store, OfflineModel()))
    with make_api(publisher).flask_app().test_client() as test_client:
        yield test_client, publisher
    publisher.join()


def _wait_past(moment: str) -> None:
    left = datetime.fromisoformat(moment).timestamp() - time.time()
    time.sleep(max(0.0, left) + 0.2)


def test_an_approval_nobody_gave_in_time_is_declined_and_cannot_be_decided(
    expiring: tuple[FlaskClient, Recording], auth: dict[str, str], store: MessageStore, user: str
) -> None:
    client, stepping = expiring
    thread = Conversation(client, auth)
    thread.say("add a task to buy milk and add a task to walk the dog")
    [approval] = thread.ask_to_delete("delete task 2")["pending_approvals"]
    requested = datetime.fromisoformat(approval["requested_at"])
    expires = datetime.fromisoformat(approval["expires_at"])
    assert 0.5 <= (expires - requested).total_seconds() <= 2
    _wait_past(approval["expires_at"])
    version = store.stream_version(thread.stream) or 0
    stepping.publish([Notification(stream_name=thread.stream, position=version)])  # the sweep
    reply = thread.reply_after(version)
    stepping.join()

    approve = thread.decide(approval["tool_call_id"], {"decision": "approve"})
    reject = thread.decide(approval["tool_call_id"], {"decision": "reject"})

    assert "didn't delete" in reply, reply
    call = thread.call("delete_task")
    assert call["status"] == "declined"
    assert call["error"] == "nobody approved this call in time, so it was not run"
    assert thread.detail()["pending_approvals"] == []
    for refused in (approve, reject):
        assert refused.status_code == 409
        assert refused.get_json()["error"]["code"] == "approval_decided"
        assert "expired" in refused.get_json()["error"]["message"]
    assert deletions(store, user) == 0


def test_an_approval_past_its_expiry_is_refused_before_the_step_records_it(
    expiring: tuple[FlaskClient, Recording], auth: dict[str, str], store: MessageStore, user: str
) -> None:
    client, stepping = expiring
    thread = Conversation(client, auth)
    thread.say("add a task to buy milk and add a task to walk the dog")
    [approval] = thread.ask_to_delete("delete task 2")["pending_approvals"]
    stepping.join()
    _wait_past(approval["expires_at"])

    response = thread.decide(approval["tool_call_id"], {"decision": "approve"})
    stepping.join()

    assert response.status_code == 409, response.get_json()
    assert response.get_json()["error"]["code"] == "approval_decided"
    assert "expired" in response.get_json()["error"]["message"]
    assert decisions(store, thread) == []  # the step records the expiry when it is woken
    assert deletions(store, user) == 0


def test_a_cancelled_turn_withdraws_its_waiting_call(
    waiting: tuple[Conversation, dict[str, Any]],
    stepping: Recording,
    store: MessageStore,
    user: str,
) -> None:
    thread, approval = waiting
    cancelled = commands.cancel_turn(store, thread.id, owner=user, now=datetime.now(UTC))
    assert cancelled.appended is not None

    response = thread.decide(approval["tool_call_id"], {"decision": "approve"})
    stepping.join()

    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "approval_decided"
    assert "withdrawn" in response.get_json()["error"]["message"]
    detail = thread.detail()
    assert detail["pending_approvals"] == []
    [call] = [c for c in detail["tool_calls"] if c["name"] == "delete_task"]
    assert (call["status"], call["error"]) == ("declined", CANCELLED_CALL)
    assert deletions(store, user) == 0


def test_a_decision_made_before_the_thread_ended_is_still_answered(
    waiting: tuple[Conversation, dict[str, Any]], stepping: Recording
) -> None:
    thread, approval = waiting
    first = thread.decide(approval["tool_call_id"], {"decision": "reject"}).get_json()
    thread.reply_after(first["position"])
    thread.client.post(f"/v1/threads/{thread.id}/end", headers=thread.auth)
    eventually(thread.detail, lambda d: d["status"] == "terminated")
    stepping.join()

    again = thread.decide(approval["tool_call_id"], {"decision": "reject"})
    other = thread.decide(approval["tool_call_id"], {"decision": "approve"})
    unknown = thread.decide("no-such-call", {"decision": "approve"})

    assert again.status_code == 200
    assert again.get_json() == first
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "approval_decided"
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "approval_not_found"
    assert thread.call("delete_task")["status"] == "declined"


@pytest.mark.parametrize("keyed", [False, True], ids=["no key", "a key each"])
def test_concurrent_approvals_write_one_decision_and_delete_once(
    waiting: tuple[Conversation, dict[str, Any]],
    stepping: Recording,
    store: MessageStore,
    user: str,
    keyed: bool,
) -> None:
    thread, approval = waiting
    path = PATH.format(thread_id=thread.id, tool_call_id=approval["tool_call_id"])
    app = thread.client.application
    go = threading.Barrier(4)

    def approve(_: int) -> tuple[int, dict[str, Any]]:
        headers = {**thread.auth, "Idempotency-Key": str(uuid.uuid4())} if keyed else thread.auth
        with app.test_client() as client:
            go.wait()
            response = client.post(path, json={"decision": "approve"}, headers=headers)
            return response.status_code, response.get_json()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(approve, range(4)))
    thread.reply_after(answers[0][1]["position"])
    stepping.join()

    assert [status for status, _ in answers] == [200] * 4
    assert len({body["position"] for _, body in answers}) == 1
    assert decisions(store, thread) == ["ToolApprovalGranted"]
    assert deletions(store, user) == 1


def _archived(store: MessageStore, folder: Path, thread: Conversation) -> None:
    backdate(store, thread.stream)
    outcome = archive.archive_thread(
        store, archive.FolderStore(folder), thread.stream, datetime.now(UTC)
    )
    assert outcome.result == "archived", outcome
    assert rows(store, thread.stream) == []


def _approved_then_archived(
    thread: Conversation,
    approval: dict[str, Any],
    stepping: Recording,
    store: MessageStore,
    folder: Path,
) -> dict[str, Any]:
    """Approve, let the turn finish, archive the thread; the decision's answer."""
    first: dict[str, Any] = thread.decide(
        approval["tool_call_id"], {"decision": "approve"}
    ).get_json()
    thread.reply_after(first["position"])
    stepping.join()
    _archived(store, folder, thread)
    return first


def test_a_decision_repeated_on_an_archived_thread_restores_it_and_is_answered(
    waiting: tuple[Conversation, dict[str, Any]],
    stepping: Recording,
    store: MessageStore,
    tmp_path: Path,
) -> None:
    thread, approval = waiting
    first = _approved_then_archived(thread, approval, stepping, store, tmp_path)

    again = thread.decide(approval["tool_call_id"], {"decision": "approve"})

    assert again.status_code == 200, again.get_json()
    assert again.get_json() == first
    assert rows(store, thread.stream) != []


def test_an_archive_that_cannot_be_restored_is_the_services_fault(
    waiting: tuple[Conversation, dict[str, Any]],
    stepping: Recording,
    store: MessageStore,
    tmp_path: Path,
) -> None:
    thread, approval = waiting
    _approved_then_archived(thread, approval, stepping, store, tmp_path)
    (export,) = tmp_path.rglob("*.jsonl")
    export.write_bytes(export.read_bytes().replace(b"milk", b"silk"))

    damaged = thread.decide(approval["tool_call_id"], {"decision": "approve"})
    export.unlink()
    missing = thread.decide(approval["tool_call_id"], {"decision": "approve"})

    assert damaged.status_code == 500
    assert damaged.get_json()["error"]["code"] == "archive_corrupted"
    assert str(tmp_path) not in damaged.get_data(as_text=True)
    assert missing.status_code == 503
    assert missing.get_json()["error"]["code"] == "archive_unavailable"
    assert rows(store, thread.stream) == []
