"""AG-UI's run input drives a thread: `POST /v1/ag-ui` appends the newest user message once per
message id and streams the run until it ends; `resume` answers its interrupts (approvals).
Every event the stream sends is checked with the `ag-ui-protocol` package's own models."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.api.conftest import MakeApi, bearer, start
from tests.api.test_approvals import DEFAULT_APPROVAL
from tests.api.test_stream import AGUI, Sse, parse
from tests.api.test_user_stories import Stepping

from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.runtime import build_engine
from messagedb_agent.settings import Settings
from messagedb_agent.store.client import MessageStore


@pytest.fixture
def chat(make_api: MakeApi, store: MessageStore, settings: Settings) -> Iterator[FlaskClient]:
    engine_settings = settings.replace(tools_requiring_approval=DEFAULT_APPROVAL)
    stepping = Stepping(build_engine(engine_settings, store, OfflineModel()))
    with make_api(stepping, stream_max_seconds=20.0).flask_app().test_client() as client:
        yield client
    stepping.join()


def run_input(thread: str, text: str | None, **extra: Any) -> dict[str, Any]:
    messages = (
        [] if text is None else [{"id": f"m-{uuid.uuid4().hex}", "role": "user", "content": text}]
    )
    return {"threadId": thread, "runId": f"r-{uuid.uuid4().hex}", "messages": messages, **extra}


def run(chat: FlaskClient, auth: dict[str, str], body: dict[str, Any]) -> list[Sse]:
    started = time.monotonic()
    response = chat.post("/v1/ag-ui", json=body, headers=auth)
    try:
        assert response.status_code == 200, response.get_data()
        messages = parse(response.get_data())
    finally:
        response.close()
    assert time.monotonic() - started < 15  # it ended with the run, not at the time limit
    for message in messages:
        assert AGUI.validate_python(message.data).type.value == message.data["type"]
    return messages


def types(messages: list[Sse]) -> list[str]:
    return [m.data["type"] for m in messages]


def test_a_run_input_appends_the_message_and_streams_the_run_to_its_end(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = start(chat, auth, None)
    body = run_input(thread, "what is 6*7?")
    messages = run(chat, auth, body)

    assert types(messages)[0] == "RUN_STARTED"
    assert types(messages)[-1] == "RUN_FINISHED"
    assert messages[-1].data["outcome"]["type"] == "success"
    text = "".join(m.data["delta"] for m in messages if m.data["type"] == "TEXT_MESSAGE_CONTENT")
    assert "42" in text

    again = chat.post("/v1/ag-ui", json=body, headers=auth)  # a client retrying the request
    again.close()
    events = chat.get(f"/v1/threads/{thread}/events", headers=auth).get_json()["events"]
    assert [e["type"] for e in events].count("UserMessageAdded") == 1


def test_a_front_ends_tools_context_and_state_are_accepted_and_the_agent_runs_its_own(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    """What CopilotKit sends along with a message: its own actions, readable context, state."""
    thread = start(chat, auth, None)
    action = {
        "name": "show_confetti",
        "description": "Celebrate on screen.",
        "parameters": {"type": "object", "properties": {}},
    }
    body = run_input(
        thread,
        "add a task to buy milk",
        tools=[action],
        context=[{"description": "the page", "value": "tasks"}],
        state={"theme": "dark"},
        forwardedProps={},
    )

    messages = run(chat, auth, body)

    assert messages[-1].data["outcome"]["type"] == "success"
    called = [m.data["toolCallName"] for m in messages if m.data["type"] == "TOOL_CALL_START"]
    assert called == ["add_task"]  # the server's tool, never the front-end's


def test_an_unknown_thread_id_is_a_new_thread_of_the_caller_and_never_someone_elses(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    other = bearer(f"other-{uuid.uuid4().hex[:8]}")
    theirs = start(chat, other, "hello")
    before = chat.get(f"/v1/threads/{theirs}/events", headers=other).get_json()["events"]

    messages = run(chat, auth, run_input(theirs, "what is 1+1?"))

    ours = messages[0].data["threadId"]
    assert ours != theirs
    after = chat.get(f"/v1/threads/{theirs}/events", headers=other).get_json()["events"]
    assert len(after) >= len(before)
    assert all(e["data"].get("message") != "what is 1+1?" for e in after)
    listed = chat.get("/v1/threads", headers=auth).get_json()["threads"]
    assert ours in {t["thread_id"] for t in listed}


def test_an_approval_interrupt_is_answered_with_resume(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = start(chat, auth, None)
    run(chat, auth, run_input(thread, "add a task to buy milk"))
    asked = run(chat, auth, run_input(thread, "delete task 1"))

    outcome = asked[-1].data["outcome"]
    assert outcome["type"] == "interrupt"
    [interrupt] = outcome["interrupts"]
    assert interrupt["reason"] == "tool_approval"

    resume = [
        {"interruptId": interrupt["id"], "status": "resolved", "payload": {"decision": "approve"}}
    ]
    resumed = run(chat, auth, run_input(thread, None, resume=resume))

    assert types(resumed)[0] == "RUN_STARTED"
    assert resumed[-1].data["outcome"]["type"] == "success"
    results = [m.data for m in resumed if m.data["type"] == "TOOL_CALL_RESULT"]
    assert any("deleted" in r["content"] for r in results)


def test_a_run_input_finds_its_thread_once_for_its_message_and_for_its_answers(
    chat: FlaskClient, auth: dict[str, str], finds: list[str]
) -> None:
    thread = start(chat, auth, None)
    finds.clear()
    asked = run(chat, auth, run_input(thread, "delete task 1"))
    assert finds == [thread]

    [interrupt] = asked[-1].data["outcome"]["interrupts"]
    resume = [{"interruptId": interrupt["id"], "status": "resolved"}]
    finds.clear()
    run(chat, auth, run_input(thread, None, resume=resume))
    assert finds == [thread]


def test_run_inputs_it_cannot_use_are_clear_4xx_errors(
    chat: FlaskClient, auth: dict[str, str]
) -> None:
    thread = start(chat, auth, None)
    no_message = chat.post("/v1/ag-ui", json=run_input(thread, None), headers=auth)
    assert no_message.status_code == 422
    bad_role = run_input(thread, None, messages=[{"id": "m1", "role": "robot", "content": "hi"}])
    refused = chat.post("/v1/ag-ui", json=bad_role, headers=auth)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["message"]
    assert chat.post("/v1/ag-ui", json=run_input(thread, "hi")).status_code == 401
