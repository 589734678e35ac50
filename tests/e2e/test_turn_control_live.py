"""Turn control through the running stack (HTTP ingest, the Pub/Sub emulator, the step and
relay functions): a cancel while a tool runs on the step function, the four policies for
messages sent while a turn runs with five concurrent posts each, and a tool that is not
idempotent whose step function is killed after its effect: reported in doubt, never run twice."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from functools import partial
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import EFFECTS_FILE, Live
from tests.e2e.conversation import Chat, ok
from tests.e2e.slow_tools import effects_for
from tests.e2e.test_dead_letter_recovery import function_down

RACERS = 5


def _until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except httpx.RemoteProtocolError:
            found = None  # a keep-alive connection the server closed while the test slept
        if found:
            return found
        assert time.monotonic() < deadline, f"not in {timeout} s: {what}"
        time.sleep(0.1)


def _of(chat: Chat, event_type: str) -> list[dict[str, Any]]:
    return [e for e in chat.events() if e["type"] == event_type]


def _busy_chat(live: Live, user: str, multitask: str | None = None) -> tuple[Chat, str]:
    """A thread whose turn is running `slow_send` on the step function."""
    http = live.client(f"{user}-{uuid.uuid4().hex[:6]}")
    chat = Chat(http)
    body = {"multitask": multitask} if multitask else {}
    chat.thread_id = ok(http.post("/v1/threads", json=body), 201)["thread_id"]
    to = f"{user}-{uuid.uuid4().hex[:8]}"
    chat.send(f"/call slow_send to={to} seconds=1.5")
    _until(lambda: effects_for(EFFECTS_FILE, to), "the tool started")
    return chat, to


def test_a_cancel_while_a_tool_runs_on_the_step_function_stops_the_turn(live: Live) -> None:
    """The tool runs 1.5 s (under its 2 s lease); on a slow machine the turn may finish before
    the cancel lands, which then rightly cancels nothing: the scenario is tried again."""
    for _ in range(3):
        chat, to = _busy_chat(live, "cancel")
        with closing(chat.http):
            cancelled = ok(chat.http.post(f"/v1/threads/{chat.thread_id}/cancel"))
            if not cancelled["cancelled"]:
                continue
            _until(partial(_of, chat, "ToolExecutionCompleted"), "the running tool's result")
            time.sleep(2.0)  # the relay and every redelivery have had their chance
            types = [e["type"] for e in chat.events()]
            after = types[types.index("TurnCancelled") :]
            assert "LLMCallRequested" not in after  # recorded, and acted on by nobody
            assert len(effects_for(EFFECTS_FILE, to)) == 1
            assert chat.say("what is 2+2?")  # the thread answers the next message
            return
    raise AssertionError("the turn finished before every cancel, three times")


def _post(live: Live, chat: Chat, text: str, query: str = "") -> httpx.Response:
    with httpx.Client(base_url=live.ingest, headers=chat.http.headers, timeout=60) as own:
        return own.post(f"/v1/threads/{chat.thread_id}/messages{query}", json={"message": text})


def _waiting_chat(live: Live, policy: str) -> Chat:
    """A thread with `policy` whose turn runs for as long as the test needs: it waits for the
    owner's approval to delete a task (deleting requires approval by default)."""
    http = live.client(f"multitask-{policy}-{uuid.uuid4().hex[:6]}")
    chat = Chat(http)
    chat.thread_id = ok(http.post("/v1/threads", json={"multitask": policy}), 201)["thread_id"]
    chat.say("Add a task to buy milk and add a task to walk the dog")
    chat.send("delete task 2")
    _until(lambda: chat.detail()["pending_approvals"], "the turn waiting for approval")
    return chat


@pytest.mark.parametrize("policy", ["enqueue", "interrupt", "rollback", "reject"])
def test_each_policy_holds_under_five_concurrent_posts(live: Live, policy: str) -> None:
    chat = _waiting_chat(live, policy)
    with closing(chat.http):
        with ThreadPoolExecutor(RACERS) as pool:
            answers = list(
                pool.map(lambda n: _post(live, chat, f"what is {n}+{n}?"), range(RACERS))
            )
        statuses = [a.status_code for a in answers]
        said = [e for e in chat.events() if e["type"] == "UserMessageAdded"]
        if policy == "reject":
            assert statuses == [409] * RACERS
            assert {a.json()["error"]["code"] for a in answers} == {"turn_running"}
            assert len(said) == 2  # the two before the waiting turn, nothing more
            assert chat.detail()["pending_approvals"]  # the turn still waits, untouched
            return
        assert statuses == [202] * RACERS
        assert len(said) == 2 + RACERS
        cancels = _of(chat, "TurnCancelled")
        if policy == "enqueue":
            assert cancels == []
            [pending] = chat.detail()["pending_approvals"]  # the turn still waits for it
            ok(
                chat.http.post(
                    f"/v1/threads/{chat.thread_id}/approvals/{pending['tool_call_id']}",
                    json={"decision": "approve"},
                )
            )
            for message in said[2:]:  # then every queued message is answered, in turn
                chat.reply_after(message["position"])
            assert len(_of(chat, "ToolExecutionCompleted")) >= 1
            return
        # The first message cancels the waiting turn; each later one cancels the turn before it
        # if that turn is still running when it lands (the step function may have answered it).
        assert cancels
        assert cancels[0]["position"] < said[2]["position"]
        assert chat.detail()["pending_approvals"] == []
        assert not [
            e
            for e in chat.events()
            if e["type"] == "ToolExecutionRequested" and e["data"]["tool_name"] == "delete_task"
        ]  # the withdrawn deletion never ran
        last = said[-1]
        n = int(last["data"]["message"].split()[2].split("+")[0])

        def answered() -> bool:  # a cancelled turn's late answer may land after it too
            return any(
                m["role"] == "assistant"
                and m["position"] > last["position"]
                and str(2 * n) in m["text"]
                for m in chat.detail()["messages"]
            )

        _until(answered, f"the answer to the last message ({n}+{n})", timeout=60)


def test_a_tool_that_is_not_idempotent_killed_after_its_effect_is_reported_in_doubt(
    live: Live,
) -> None:
    http = live.client(f"doubt-{uuid.uuid4().hex[:6]}")
    chat = Chat(http)
    with http:
        chat.start()
        to = f"doubt-{uuid.uuid4().hex[:8]}"
        chat.send(f"/call slow_send to={to} seconds=6")
        _until(lambda: effects_for(EFFECTS_FILE, to), "the effect")
        with function_down(live, "step"):  # killed while the tool waits: effect, no record
            time.sleep(3.0)  # past the 2 s tool lease
        doubt = _until(lambda: _of(chat, "ToolExecutionInDoubt"), "the call reported in doubt")
        assert [d["data"]["tool_name"] for d in doubt] == ["slow_send"]
        reply = chat.reply_after(doubt[0]["position"])
        assert "unknown outcome" in reply
        time.sleep(2.0)
        assert len(effects_for(EFFECTS_FILE, to)) == 1  # never run twice
        # a new connection: the server closes an idle keep-alive one while the test sleeps
        with httpx.Client(base_url=live.ingest, headers=http.headers, timeout=60) as fresh:
            assert _of(Chat(fresh, chat.thread_id), "ToolExecutionCompleted") == []
