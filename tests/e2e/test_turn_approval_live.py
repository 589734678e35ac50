"""Tool approval through the running stack (named to run after the dead-letter test, whose
dead-lettering is slowed by any other failing push; see the note in that test): HTTP ingest, the Pub/Sub emulator and the step
function. A deletion (`delete_task` requires approval by default) waits for its owner; approved
by three racing requests while Pub/Sub delivers every position three times, it runs once;
rejected, it never runs and the reply says so."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import httpx
from tests.e2e.conftest import Live
from tests.e2e.conversation import Chat, ok

from messagedb_agent.notification import Notification
from messagedb_agent.store import stream_name as names


def _waiting(chat: Chat, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = chat.detail()
        if detail["pending_approvals"]:
            return detail
        time.sleep(0.1)
    raise AssertionError(f"nothing waits for approval in thread {chat.thread_id}")


def _copies(live: Live, chat: Chat, copies: int = 3, last: int = 6) -> None:
    """The thread's `last` positions (those of the approval at stake) delivered `copies` times
    more, as Pub/Sub may; then a pause while the emulator pushes them, so that they are not
    still in flight when a later test takes the step function down."""
    stream = names.thread_stream(chat.thread_id)
    live.publish_again(
        [
            Notification(stream_name=stream, position=event["position"])
            for event in chat.events()[-last:]
            for _ in range(copies)
        ]
    )
    time.sleep(0.1 * copies * last)


def _types(chat: Chat) -> list[str]:
    return [event["type"] for event in chat.events()]


def _of(chat: Chat, event_type: str, tool: str = "delete_task") -> list[dict[str, Any]]:
    return [
        e for e in chat.events() if e["type"] == event_type and e["data"].get("tool_name") == tool
    ]


def _task_list(chat: Chat) -> str:
    return chat.say("What are my tasks?")


def _prepared(live: Live, user: str) -> tuple[Chat, httpx.Client]:
    http = live.client(f"{user}-{uuid.uuid4().hex[:6]}")
    chat = Chat(http)
    chat.start()
    chat.say("Add a task to buy milk and add a task to walk the dog")
    return chat, http


def test_an_approved_deletion_runs_once_under_racing_approvals_and_duplicate_deliveries(
    live: Live,
) -> None:
    chat, http = _prepared(live, "approver")
    with closing(http):
        started = time.monotonic()
        answer = ok(
            http.post(
                f"/v1/threads/{chat.thread_id}/messages",
                params={"wait": 25},
                json={"message": "delete task 2"},
            ),
            202,
        )
        assert time.monotonic() - started < 15  # the wait ended when the turn stopped
        assert answer.get("reply") is None
        detail = _waiting(chat)
        [pending] = detail["pending_approvals"]
        assert (pending["tool"], pending["arguments"]) == ("delete_task", {"task_id": 2})
        call_id = pending["tool_call_id"]
        assert {c["id"]: c["status"] for c in detail["tool_calls"]}[call_id] == "awaiting_approval"
        _copies(live, chat)  # nothing runs while it waits, however often it is announced
        time.sleep(1.0)
        assert _of(chat, "ToolExecutionRequested") == []

        def approve(_: int) -> dict[str, Any]:
            with live.client(_user(http)) as own:
                decided: dict[str, Any] = ok(
                    own.post(
                        f"/v1/threads/{chat.thread_id}/approvals/{call_id}",
                        json={"decision": "approve"},
                    )
                )
                return decided

        with ThreadPoolExecutor(3) as pool:
            decisions = list(pool.map(approve, range(3)))
        assert {d["decision"] for d in decisions} == {"approved"}
        assert len({d["position"] for d in decisions}) == 1
        _copies(live, chat)
        reply = chat.reply_after(decisions[0]["position"])
        assert "Deleted task #2" in reply
        _copies(live, chat)
        time.sleep(1.0)
        types = _types(chat)
        assert types.count("ToolApprovalGranted") == 1
        assert len(_of(chat, "ToolExecutionCompleted")) == 1
        assert "walk the dog" not in _task_list(chat)
        assert chat.detail()["pending_approvals"] == []


def test_a_rejected_deletion_never_runs_and_the_reply_says_so(live: Live) -> None:
    chat, http = _prepared(live, "rejecter")
    with closing(http):
        chat.send("delete task 2")
        call_id = _waiting(chat)["pending_approvals"][0]["tool_call_id"]
        decided = ok(
            http.post(
                f"/v1/threads/{chat.thread_id}/approvals/{call_id}",
                json={"decision": "reject", "reason": "I still need it"},
            )
        )
        assert decided["decision"] == "declined"
        reply = chat.reply_after(decided["position"])
        assert "didn't delete" in reply
        assert "I still need it" in reply
        conflict = http.post(
            f"/v1/threads/{chat.thread_id}/approvals/{call_id}", json={"decision": "approve"}
        )
        assert conflict.status_code == 409
        assert conflict.json()["error"]["code"] == "approval_decided"
        assert _of(chat, "ToolExecutionRequested") == []
        assert "walk the dog" in _task_list(chat)
        call = {c["id"]: c for c in chat.detail()["tool_calls"]}[call_id]
        assert call["status"] == "declined"


def _user(http: httpx.Client) -> str:
    """The user whose token `http` sends (the stack's development tokens name it in `sub`)."""
    import base64
    import json

    token = http.headers["Authorization"].split()[1]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])
